"""redis-compat-tests/serverctl.py: starts a kvd or redis-server on a free loopback
port with its own temporary dir, waits (bounded) until it answers PING, and stops
it by PID. Used by differential.py; run.sh does the same in shell.

A binary whose name contains "redis-server" gets Redis's no-persistence options
(--save '' --appendonly no); any other binary is taken to be kvd.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from respclient import Conn


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, binary, extra=(), name='server', startup_timeout=20.0):
        self.binary = binary
        self.name = name
        self.dir = tempfile.mkdtemp(prefix='kvd-compat-%s-' % name)
        self.proc = None
        self.port = None
        last = None
        for _ in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            args = [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--dir', self.dir]
            if 'redis-server' in os.path.basename(binary):
                args += ['--save', '', '--appendonly', 'no', '--daemonize', 'no']
            args += list(extra)
            self.log = open(os.path.join(self.dir, 'server.log'), 'wb')
            self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                         cwd=self.dir)
            if self._wait_ping(startup_timeout):
                return
            last = self._tail()
            self._kill()
        raise RuntimeError('%s (%s) did not answer PING; log tail:\n%s' % (name, binary, last))

    def _wait_ping(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = Conn(self.port, timeout=2)
                r = c.call('PING')
                c.close()
                if r[0] == 'simple' or (r[0] == 'error' and r[1].startswith(b'NOAUTH')):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _tail(self):
        try:
            with open(os.path.join(self.dir, 'server.log'), 'rb') as f:
                return f.read()[-3000:].decode(errors='replace')
        except OSError:
            return ''

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=20.0):
        """SIGTERM by PID, bounded wait, then SIGKILL. Returns the exit status (None
        when it had to be killed)."""
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        elif self.proc:
            rc = self.proc.returncode
        self.log.close()
        return rc

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
