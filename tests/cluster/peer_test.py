"""tests/cluster/peer_test.py KVD_BINARY [--asan]: bad input on a node's port.

A 3-node cache cluster; against node 1's port (where peers and clients both
connect): garbage bytes, KVD.PEER verbs without having proved the secret, a failed
proof, a huge bulk header, a huge multibulk count, half a frame then silence, and a
connection that pipelines requests without ever reading. Each gets error replies or
a closed connection (never a data reply), memory stays bounded, and meanwhile and
afterwards the node answers other clients and the cluster stays whole. KVD.PEER
never appears in COMMAND. Ends with "N passed, M failed"; SKIPs while the binary
has no cluster.
"""
import socket
import sys
import time

import redis

import harness

PEER_VERBS = ['READ', 'WRITE', 'APPLY', 'HINT', 'PING', 'GOSSIP', 'RING', 'SCAN', 'FLUSH', 'NOSUCHVERB']


def resp(*args):
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    return out


def conn(nd, timeout=5.0):
    s = socket.create_connection((nd.ip, nd.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def send(s, data):
    """sendall; False when the node has already closed the connection (a refusal
    may close it before the rest of a pipeline is written)."""
    try:
        s.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def read_some(s, timeout=5.0):
    """Bytes available within timeout (b'' means closed; None means nothing came)."""
    s.settimeout(timeout)
    try:
        return s.recv(65536)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b''


def read_replies(s, n, timeout=5.0):
    """Reads until n CRLF-terminated top-level lines arrived, EOF, or timeout. Returns
    (data, closed)."""
    buf = b''
    deadline = time.time() + timeout
    while buf.count(b'\r\n') < n and time.time() < deadline:
        d = read_some(s, max(0.05, deadline - time.time()))
        if d is None:
            break
        if d == b'':
            return buf, True
        buf += d
    return buf, False


def errors_or_closed(buf, closed):
    """True when every reply line in buf is an error (or buf is empty and closed)."""
    lines = [ln for ln in buf.split(b'\r\n') if ln]
    if not lines:
        return closed
    return all(ln.startswith(b'-') for ln in lines)


def served(nd, res, what):
    try:
        c = nd.client(timeout=3.0)
        ok = c.ping() and c.set('peer:alive', what) and c.get('peer:alive') == what.encode()
        c.close()
    except (redis.RedisError, OSError) as e:
        ok = False
        what += ' (%s)' % e
    res.check('node answers another client %s' % what, ok)


def rss_kb(nd):
    try:
        with open('/proc/%d/status' % nd.pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cl, res):
    nd = cl.nodes[0]
    rss0 = rss_kb(nd)

    s = conn(nd)
    s.sendall(b'\x00\x01\xff\xfeGARBAGE \x80 garbage\r\n*x\r\n')
    buf, closed = read_replies(s, 1)
    res.check('garbage gets an error or a close', (buf.startswith(b'-') or closed) and not buf.startswith(b'+'),
              (buf[:200], closed))
    s.close()
    served(nd, res, 'after garbage')

    s = conn(nd)
    sent_all = all(send(s, resp('KVD.PEER', v, 'x', 'y')) for v in PEER_VERBS)
    buf, closed = read_replies(s, len(PEER_VERBS))
    closed = closed or not sent_all
    res.check('KVD.PEER verbs without the secret get only errors (or a close)',
              errors_or_closed(buf, closed), (buf[:400], closed))
    s.close()
    s = conn(nd)
    s.sendall(resp('KVD.PEER', 'AUTH', 'not-the-proof'))
    buf, closed = read_replies(s, 1)
    res.check('a wrong proof gets an error or a close', errors_or_closed(buf, closed), (buf[:200], closed))
    if send(s, resp('KVD.PEER', 'READ', '0', 'k')):
        buf2, closed2 = read_replies(s, 1, timeout=3.0)
    else:
        buf2, closed2 = b'', True
    res.check('after a wrong proof internal verbs are still refused',
              errors_or_closed(buf2, closed2 or closed), (buf2[:200], closed2))
    s.close()
    served(nd, res, 'after unauthenticated KVD.PEER')

    c = nd.client()
    c.response_callbacks.pop('COMMAND', None)  # the raw replies
    info = c.execute_command('COMMAND', 'INFO', 'KVD.PEER')
    res.check('COMMAND INFO KVD.PEER knows no such command', info in ([None], [], None), info)
    names = [x.lower() for x in c.execute_command('COMMAND', 'LIST')]
    res.check('COMMAND LIST does not list kvd.peer', b'kvd.peer' not in names)
    c.close()

    s = conn(nd)
    s.sendall(b'*2\r\n$99999999999999\r\n')
    buf, closed = read_replies(s, 1)
    res.check('a huge bulk header gets an error or a close', errors_or_closed(buf, closed), (buf[:200], closed))
    s.close()
    s = conn(nd)
    s.sendall(b'*2147483647\r\n$8\r\nKVD.PEER\r\n')
    buf, closed = read_replies(s, 1, timeout=2.0)
    res.check('a huge multibulk count: no data reply', not buf.startswith((b'+', b'$', b'*', b':')), buf[:200])
    s.close()
    s = conn(nd)
    s.sendall(b'*2\r\n$8\r\nKVD.PEER\r\n$536870000\r\nabc')  # 512 MB promised, 3 sent
    time.sleep(0.5)
    grew = rss_kb(nd) - rss0
    res.check('a promised 512 MB bulk does not allocate it (RSS grew %d kB)' % grew, grew < 256 * 1024, grew)
    served(nd, res, 'while a 512 MB bulk is half sent')
    s.close()

    halves = []
    for frame in (b'*3\r\n$3\r\nSET\r\n$1\r\nk', b'*4\r\n$8\r\nKVD.PEER\r\n$5\r\nHELLO\r\n$', b'*1'):
        h = conn(nd)
        h.sendall(frame)
        halves.append(h)
    t0 = time.time()
    served(nd, res, 'while three connections hold half a frame')
    res.check('and within 2 s', time.time() - t0 < 2.0, time.time() - t0)

    # a connection that sends and never reads
    nr = conn(nd, timeout=2.0)
    sent = 0
    chunk = resp('KVD.PEER', 'READ', '0', 'somekey') * 2000
    deadline = time.time() + 10
    nr.setblocking(False)
    while sent < 8 * 1024 * 1024 and time.time() < deadline:
        try:
            sent += nr.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
    served(nd, res, 'while a connection pipelines %d kB and never reads' % (sent // 1024))
    nr.close()
    for h in halves:
        h.close()

    time.sleep(0.5)
    served(nd, res, 'at the end')
    ok, why = cl.wait_all_up(20)
    res.check('the cluster is still whole (every member up everywhere)', ok, why)


def main():
    return harness.scenario(sys.argv[1], 'peer', run, n=3, mode='cache')


if __name__ == '__main__':
    sys.exit(main())
