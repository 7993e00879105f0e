"""tests/cluster/local_digest.py: what one node holds locally, as a peer sees it.

A client read (even at ONE) may be answered by another replica, so it cannot say
whether a given replica converged. This module talks to a node's client port as a
peer does: it proves the cluster secret (the KVD.PEER HELLO/AUTH exchange of
cluster/auth.h, HMAC-SHA256 over both nonces and both ids) and asks
`KVD.PEER MERKLE 0 0 0`: the root of the node's own Merkle tree over the whole
ring (cluster/merkle.h), with the count of its records. Two nodes that hold the
same records (key, version, tombstone, expiry, every db) give the same
(nkeys, root); with N equal to the node count every node replicates every key,
so equal digests on all nodes mean every replica converged.

The scan of the whole store is one step on the node's loop: fine for the tests'
few thousand keys, not for a production node with millions.
"""
import hashlib
import hmac
import os
import socket
import struct

PROBE_ID = b'digest-probe'
LABEL_DIALER = b'kvd-peer-v1 dialer'
LABEL_LISTENER = b'kvd-peer-v1 listener'


def _proof(secret, label, nonce_d, nonce_l, id_d, id_l):
    msg = (bytes([len(label)]) + label + nonce_d + nonce_l + bytes([len(id_d)]) + id_d +
           bytes([len(id_l)]) + id_l)
    return hmac.new(secret, msg, hashlib.sha256).digest()


class _Conn:
    """A minimal RESP client (one request, one reply) on a socket."""

    def __init__(self, ip, port, timeout):
        self.sock = socket.create_connection((ip, port), timeout=timeout)
        self.buf = b''

    def close(self):
        self.sock.close()

    def call(self, *words):
        words = [w if isinstance(w, bytes) else str(w).encode() for w in words]
        out = b'*%d\r\n' % len(words) + b''.join(b'$%d\r\n%s\r\n' % (len(w), w) for w in words)
        self.sock.sendall(out)
        return self._reply()

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('connection closed')
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'-':
            raise RuntimeError(rest.decode('utf-8', 'replace'))
        if kind == b'$':
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b'*':
            return [self._reply() for _ in range(int(rest))]
        if kind in (b'+', b':'):
            return rest
        raise RuntimeError('unexpected reply %r' % line[:40])


def local_digest(node, secret, timeout=10.0):
    """(nkeys, root) of node's own records over the whole ring. Raises on a refused
    handshake, an error reply or a connection failure."""
    secret = secret.encode() if isinstance(secret, str) else secret
    c = _Conn(node.ip, node.port, timeout)
    try:
        nonce_d = os.urandom(32)
        id_l, nonce_l_hex = c.call('KVD.PEER', 'HELLO', PROBE_ID, nonce_d.hex())
        nonce_l = bytes.fromhex(nonce_l_hex.decode())
        mine = _proof(secret, LABEL_DIALER, nonce_d, nonce_l, PROBE_ID, id_l)
        theirs = c.call('KVD.PEER', 'AUTH', mine.hex())
        want = _proof(secret, LABEL_LISTENER, nonce_d, nonce_l, PROBE_ID, id_l)
        if not hmac.compare_digest(bytes.fromhex(theirs.decode()), want):
            raise RuntimeError('%s answered a wrong listener proof' % node.addr)
        body = c.call('KVD.PEER', 'MERKLE', 0, 0, 0)
        if not isinstance(body, bytes) or len(body) != 16:
            raise RuntimeError('MERKLE reply of %r bytes' % (len(body) if body else body))
        return struct.unpack('>QQ', body)
    finally:
        c.close()


def digests(cluster, nodes=None):
    """{node index: (nkeys, root) or an error string} for nodes (default all)."""
    out = {}
    for nd in nodes or cluster.nodes:
        try:
            out[nd.index] = local_digest(nd, cluster.secret)
        except (OSError, RuntimeError, ValueError) as e:
            out[nd.index] = 'error: %s' % e
    return out


def converged(d):
    """True when every digest in d (from digests()) is the same, none an error."""
    vals = list(d.values())
    return bool(vals) and all(not isinstance(v, str) for v in vals) and len(set(vals)) == 1
