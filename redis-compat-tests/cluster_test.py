#!/usr/bin/python3
"""redis-compat-tests/cluster_test.py: kvd nodes forming a cluster, as real processes
(kvd only: Redis has no such thing).

  form      3 nodes on 127.0.0.2, .3, .4 (own ports and dirs, cluster-enabled yes,
            the first one as every node's seed, a shared secret): KVD NODES on every
            node lists the 3 members up (polled, bounded); KVD RING is the same on
            every node (48 tokens at vnodes 16, ascending); KVD KEYNODES gives the
            same 3 distinct replicas everywhere; INFO kvdcluster says ready.
  peers     KVD.PEER READ on a connection that has not proved the secret is refused
            and the connection closed; a wrong proof too.
  secret    a 4th node with another secret never becomes ready and never joins.
  restart   a node restarted on its dir keeps its id and tokens (node-tokens) and
            is back up in everyone's KVD NODES.
  disabled  cluster-enabled no: COMMAND COUNT as with the cluster on (KVD.PEER is
            never listed), INFO without a kvdcluster section and cluster_enabled:0,
            KVD.PEER an unknown command, KVD NODES an error that says why.
  config    cluster-enabled without cluster-secret, or write-quorum above
            replication-factor: the node refuses to start.
Every process is stopped by its PID in a finally block.
Usage: cluster_test.py --kvd BIN. Ends with "N passed, M failed".
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from respclient import Conn, Harness

H = Harness('cluster')
SECRET = 'compat-cluster-secret'


def _on_sigterm(signum, frame):
    sys.exit(128 + signum)  # unwinds through the finally blocks


signal.signal(signal.SIGTERM, _on_sigterm)


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Node:
    def __init__(self, binary, host, workdir, name, extra=()):
        self.binary = binary
        self.host = host
        self.port = free_port(host)
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.extra = list(extra)
        self.proc = None
        self.logpath = self.dir + '.log'

    def args(self):
        return [self.binary, '--port', str(self.port), '--bind', self.host, '--dir', self.dir,
                '--mode', 'persistent', '--appendfsync', 'everysec'] + self.extra

    def spawn(self):
        log = open(self.logpath, 'ab')
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        log.close()

    def start(self, timeout=30.0):
        self.spawn()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited (%s): %s' % (self.name, self.proc.returncode,
                                                            self.tail()))
            try:
                c = self.conn(2)
                try:
                    if c.call('PING') == ('simple', b'PONG'):
                        return
                finally:
                    c.close()
            except (OSError, EOFError):
                pass
            time.sleep(0.05)
        raise RuntimeError('%s did not answer PING' % self.name)

    def conn(self, timeout=10.0):
        return Conn(self.port, host=self.host, timeout=timeout)

    def call(self, *args):
        c = self.conn()
        try:
            return c.call(*args)
        finally:
            c.close()

    def stop(self, timeout=30.0):
        """SIGTERM by PID, bounded wait, then SIGKILL. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def tail(self):
        try:
            with open(self.logpath, 'rb') as f:
                return f.read()[-2000:].decode(errors='replace')
        except OSError:
            return ''


def bulk_text(r):
    return r[1].decode() if r[0] in ('bulk', 'verbatim') and r[1] is not None else ''


def lines_of(r):
    return [l for l in bulk_text(r).split('\n') if l]


def all_up(nodes, count):
    for n in nodes:
        ls = lines_of(n.call('KVD', 'NODES'))
        if len(ls) != count or any(l.split(' ')[2] != 'up' for l in ls):
            return False
    return True


def wait_for(cond, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def node_id(n):
    for l in lines_of(n.call('KVD', 'NODES')):
        if l.endswith(' myself'):
            return l.split(' ')[0]
    return None


def cluster_args(seed):
    return ['--cluster-enabled', 'yes', '--cluster-secret', SECRET, '--cluster-seeds', seed]


def t_form_and_peers(binary, wd):
    seed_host = '127.0.0.2'
    first = Node(binary, seed_host, wd, 'n2')
    seed = '%s:%d' % (seed_host, first.port)
    first.extra = cluster_args(seed)
    nodes = [first] + [Node(binary, '127.0.0.%d' % i, wd, 'n%d' % i, cluster_args(seed))
                       for i in (3, 4)]
    stranger = Node(binary, '127.0.0.5', wd, 'n5',
                    ['--cluster-enabled', 'yes', '--cluster-secret', 'another-secret',
                     '--cluster-seeds', seed])
    try:
        for n in nodes:
            n.start()
        H.check('form: every node lists the 3 members up', wait_for(lambda: all_up(nodes, 3), 20),
                [bulk_text(n.call('KVD', 'NODES')) for n in nodes])
        ids = [node_id(n) for n in nodes]
        H.check('form: 3 distinct ids, each node knows itself', len(set(ids)) == 3 and
                all(re.fullmatch(r'[0-9a-f]{32}', i or '') for i in ids), ids)
        for n in nodes:
            ls = lines_of(n.call('KVD', 'NODES'))
            addrs = sorted(l.split(' ')[1] for l in ls)
            H.eq('form: %s lists the announced addresses' % n.name, addrs,
                 sorted('%s:%d' % (m.host, m.port) for m in nodes))
        rings = [bulk_text(n.call('KVD', 'RING')) for n in nodes]
        H.check('form: KVD RING is the same on every node', rings[0] == rings[1] == rings[2])
        toks = [int(l.split(' ')[0]) for l in rings[0].split('\n') if l]
        H.eq('form: 16 tokens per node', len(toks), 48)
        H.check('form: tokens ascending', toks == sorted(toks))
        kn = [lines_of(n.call('KVD', 'KEYNODES', 'user:42')) for n in nodes]
        H.check('form: KVD KEYNODES is the same on every node', kn[0] == kn[1] == kn[2], kn)
        H.eq('form: a key has 3 distinct replicas', len(set(l.split(' ')[0] for l in kn[0])), 3)
        info = nodes[1].call('INFO', 'kvdcluster')
        text = bulk_text(info)
        H.check('form: INFO kvdcluster ready, 3 members up',
                'ready:1\r\n' in text and 'members_up:3\r\n' in text, text)
        H.check('form: INFO cluster keeps cluster_enabled:0',
                'cluster_enabled:0' in bulk_text(nodes[1].call('INFO', 'cluster')))

        # peers: no proof, wrong proof
        c = nodes[0].conn()
        try:
            r = c.call('KVD.PEER', 'READ', '0', 'k')
            H.check('peers: READ without the secret refused', r[0] == 'error' and
                    r[1].startswith(b'NOAUTH'), r)
            try:
                r2 = c.call('PING')
                H.check('peers: the refused connection is closed', False, r2)
            except (OSError, EOFError):
                H.check('peers: the refused connection is closed', True)
        finally:
            c.close()
        c = nodes[0].conn()
        try:
            r = c.call('KVD.PEER', 'HELLO', 'intruder', 'ab' * 32)
            H.check('peers: HELLO answers a nonce', r[0] == 'array' and len(r[1]) == 2, r)
            r = c.call('KVD.PEER', 'AUTH', 'cd' * 32)
            H.check('peers: a wrong proof is refused', r[0] == 'error', r)
        finally:
            c.close()
        H.eq('peers: a normal client still works', nodes[0].call('PING'), ('simple', b'PONG'))

        # a node with another secret never joins
        stranger.start()
        time.sleep(2.0)
        st = bulk_text(stranger.call('INFO', 'kvdcluster'))
        H.check('secret: the stranger is not ready', 'ready:0\r\n' in st, st)
        r = stranger.call('KVD', 'KEYNODES', 'k')
        H.check('secret: KEYNODES says why', r[0] == 'error' and b'waiting for the seeds' in r[1], r)
        H.check('secret: nobody lists the stranger',
                all(len(lines_of(n.call('KVD', 'NODES'))) == 3 for n in nodes))

        # restart keeps id and tokens
        victim = nodes[2]
        vid = node_id(victim)
        vtoks = sorted(l for l in rings[0].split('\n') if l.endswith(' ' + vid))
        with open(os.path.join(victim.dir, 'node-tokens')) as f:
            saved = f.read()
        H.eq('restart: exit status 0', victim.stop(), 0)
        H.check('restart: the others see it down',
                wait_for(lambda: any(' down ' in l for l in lines_of(nodes[0].call('KVD', 'NODES'))),
                         10))
        victim.start()
        H.eq('restart: same node id', node_id(victim), vid)
        with open(os.path.join(victim.dir, 'node-tokens')) as f:
            H.eq('restart: node-tokens unchanged', f.read(), saved)
        H.check('restart: everyone lists 3 up again', wait_for(lambda: all_up(nodes, 3), 20))
        ring2 = bulk_text(nodes[0].call('KVD', 'RING'))
        H.eq('restart: its tokens on the ring are the same',
             sorted(l for l in ring2.split('\n') if l.endswith(' ' + vid)), vtoks)
        for n in nodes:
            H.eq('%s: exit status 0' % n.name, n.stop(), 0)
    finally:
        for n in nodes + [stranger]:
            n.stop()


def t_disabled_unchanged(binary, wd):
    plain = Node(binary, '127.0.0.1', wd, 'plain')
    on = Node(binary, '127.0.0.1', wd, 'on', ['--cluster-enabled', 'yes', '--cluster-secret',
                                                SECRET])
    try:
        plain.start()
        on.start()
        H.eq('disabled: COMMAND COUNT as with the cluster on', plain.call('COMMAND', 'COUNT'),
             on.call('COMMAND', 'COUNT'))
        names = [x[1] for x in plain.call('COMMAND', 'LIST')[1]]
        H.check('disabled: KVD.PEER is never listed', b'kvd.peer' not in names)
        text = bulk_text(plain.call('INFO'))
        heads = re.findall(r'^# (\w+)', text, re.M)
        H.eq('disabled: INFO sections as before', heads,
             ['Server', 'Clients', 'Memory', 'Persistence', 'Stats', 'Replication', 'CPU',
              'Modules', 'Errorstats', 'Cluster', 'Keyspace'])
        H.check('disabled: cluster_enabled:0', 'cluster_enabled:0\r\n' in text)
        H.eq('disabled: INFO kvdcluster is empty', bulk_text(plain.call('INFO', 'kvdcluster')), '')
        r = plain.call('KVD.PEER', 'HELLO', 'x', 'ab' * 32)
        H.check('disabled: KVD.PEER is an unknown command',
                r[0] == 'error' and r[1].startswith(b"ERR unknown command 'KVD.PEER'"), r)
        H.eq('disabled: KVD NODES says why', plain.call('KVD', 'NODES'),
             ('error', b'ERR cluster support is disabled (cluster-enabled no)'))
        H.check('disabled: KVD arity error', plain.call('KVD')[0] == 'error')
        text_on = bulk_text(on.call('INFO'))
        H.check('enabled: INFO adds kvdcluster, keeps cluster_enabled:0',
                '# Kvdcluster\r\n' in text_on and 'cluster_enabled:0\r\n' in text_on)
        H.eq('enabled: a one-node cluster lists itself',
             len(lines_of(on.call('KVD', 'NODES'))), 1)
        H.eq('plain: exit status 0', plain.stop(), 0)
        H.eq('on: exit status 0', on.stop(), 0)
    finally:
        plain.stop()
        on.stop()


def refuses(binary, wd, name, extra, words):
    n = Node(binary, '127.0.0.1', wd, name, extra)
    try:
        n.spawn()
        try:
            rc = n.proc.wait(20)
        except subprocess.TimeoutExpired:
            rc = None
        log = n.tail()
        H.check('config: %s refuses to start' % name, rc not in (None, 0) and words in log,
                (rc, log[-300:]))
    finally:
        n.stop()


def t_config(binary, wd):
    refuses(binary, wd, 'nosecret', ['--cluster-enabled', 'yes'], 'cluster-secret')
    refuses(binary, wd, 'badquorum', ['--cluster-enabled', 'yes', '--cluster-secret', 's',
                                      '--write-quorum', '4'], 'write-quorum')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvd', required=True)
    a = ap.parse_args()
    binary = os.path.abspath(a.kvd)
    if 'redis-server' in os.path.basename(binary):
        print('0 passed, 0 failed (kvd only)')
        return 0
    wd = tempfile.mkdtemp(prefix='kvd-cluster-', dir='/tmp')
    try:
        H.case(t_form_and_peers, binary, wd)
        H.case(t_disabled_unchanged, binary, wd)
        H.case(t_config, binary, wd)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    return H.summary()


if __name__ == '__main__':
    sys.exit(main())
