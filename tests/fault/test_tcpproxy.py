#!/usr/bin/env python3
"""test_tcpproxy.py - self-test of tcpproxy.py (stdlib unittest, ~6 s).

  python3 tests/fault/test_tcpproxy.py [-v]

Starts a local threaded echo server and one tcpproxy.py per test in front of it, then checks
50 MB pass-through integrity (sha256 both ends, throughput printed), 20 concurrent streams,
reset after N bytes in each direction and on an already open connection (ConnectionResetError
at the right offset), reset count, stall (delay >= S, data intact), stall "forever" released
by pass, refuse, unreachable target, stats counts, the ctl helper, bad commands, and that
SIGTERM/SIGINT close everything and exit 0 with every stderr line valid JSON.
"""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tcpproxy.py')
MB = 1 << 20


class EchoServer:
    """Echoes every byte back; remembers how many bytes each connection received."""

    def __init__(self):
        self.lsock = socket.create_server(('127.0.0.1', 0))
        self.port = self.lsock.getsockname()[1]
        self.received, self.threads = [], []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            slot = len(self.received)
            self.received.append(0)
            t = threading.Thread(target=self.echo, args=(s, slot), daemon=True)
            self.threads.append(t)
            t.start()

    def echo(self, s, slot):
        buf = bytearray(65536)
        with s:
            try:
                while (n := s.recv_into(buf)):
                    self.received[slot] += n
                    s.sendall(memoryview(buf)[:n])
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.lsock.close()


def send_all(sock, data, chunk=MB):
    """Sender thread body: tolerates the connection being reset under it."""
    try:
        for i in range(0, len(data), chunk):
            sock.sendall(data[i:i + chunk])
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def recv_until(sock, want, h=None):
    got = 0
    while got < want:
        d = sock.recv(65536)
        if not d:
            break
        got += len(d)
        if h:
            h.update(d)
    return got


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = EchoServer()

    @classmethod
    def tearDownClass(cls):
        cls.echo.close()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.ctl_path = os.path.join(self.tmp.name, 'ctl.sock')
        ready = os.path.join(self.tmp.name, 'ready.json')
        self.errlog = open(os.path.join(self.tmp.name, 'stderr.log'), 'w+')
        self.proc = subprocess.Popen(
            [sys.executable, PROXY, '--listen', '127.0.0.1:0', '--target',
             '127.0.0.1:%d' % self.echo.port, '--control', self.ctl_path, '--ready-file', ready],
            stdout=subprocess.PIPE, stderr=self.errlog, text=True)
        line = json.loads(self.proc.stdout.readline())
        with open(ready) as f:
            self.assertEqual(json.load(f), line)
        self.assertEqual(line['pid'], self.proc.pid)
        self.port = line['port']

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.proc.wait(10), 0)
        self.proc.stdout.close()
        self.errlog.seek(0)
        events = [json.loads(line) for line in self.errlog]  # every line must be JSON
        self.assertTrue(all('ts' in e and 'event' in e for e in events))
        self.errlog.close()
        self.tmp.cleanup()

    def ctl(self, **cmd):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.ctl_path)
            s.sendall(json.dumps(cmd).encode() + b'\n')
            return json.loads(s.makefile().readline())

    def connect(self):
        s = socket.create_connection(('127.0.0.1', self.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return s

    def start_sender(self, sock, data):
        t = threading.Thread(target=send_all, args=(sock, data), daemon=True)
        t.start()
        return t

    def test_passthrough_50mb(self):
        data = os.urandom(50 * MB)
        h = hashlib.sha256()
        with self.connect() as s:
            t0 = time.monotonic()
            t = self.start_sender(s, data)
            got = recv_until(s, len(data) + 1, h)
            dt = time.monotonic() - t0
            t.join()
        self.assertEqual(got, len(data))
        self.assertEqual(h.hexdigest(), hashlib.sha256(data).hexdigest())
        sys.stderr.write('\n  50 MiB echoed: proxy forwarded %.0f MB in %.2f s = %.0f MB/s '
                         '(echo and client share the CPUs) ... '
                         % (2 * len(data) / 1e6, dt, 2 * len(data) / dt / 1e6))
        st = self.ctl(cmd='stats')
        self.assertEqual((st['bytes_c2s'], st['bytes_s2c']), (len(data), len(data)))

    def test_concurrent_connections(self):
        data = [os.urandom(MB + i) for i in range(20)]
        socks = [self.connect() for _ in data]
        senders = [self.start_sender(s, d) for s, d in zip(socks, data)]
        for s, d in zip(socks, data):
            h = hashlib.sha256()
            self.assertEqual(recv_until(s, len(d) + 1, h), len(d))
            self.assertEqual(h.digest(), hashlib.sha256(d).digest())
            s.close()
        for t in senders:
            t.join()
        time.sleep(0.1)
        st = self.ctl(cmd='stats')
        self.assertEqual((st['connections'], st['open']), (20, 0))
        self.assertEqual(st['bytes_s2c'], sum(map(len, data)))

    def test_target_down(self):
        dead = socket.create_server(('127.0.0.1', 0))
        port = dead.getsockname()[1]
        dead.close()
        ctl2 = os.path.join(self.tmp.name, 'ctl2.sock')
        p = subprocess.Popen([sys.executable, PROXY, '--listen', '127.0.0.1:0', '--target',
                              '127.0.0.1:%d' % port, '--control', ctl2],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = json.loads(p.stdout.readline())['port']
            with self.assertRaises(ConnectionResetError):  # refused target -> RST
                with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
                    s.recv(10)
        finally:
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(10), 0)
            err = p.stderr.read()
            p.stdout.close()
            p.stderr.close()
        self.assertIn('"error": "Connection refused"', err)

    def test_reset_s2c_offset(self):
        n = 1_000_000
        r = self.ctl(cmd='reset', after_bytes=n, direction='s2c', count=1)
        self.assertEqual(r['mode'], 'reset')
        with self.connect() as s:
            self.start_sender(s, os.urandom(4 * MB))
            got = 0
            with self.assertRaises(ConnectionResetError):
                while (d := s.recv(65536)):
                    got += len(d)
        self.assertLessEqual(abs(got - n), 65536)
        st = self.ctl(cmd='stats')
        self.assertEqual((st['resets'], st['mode'], st['bytes_s2c']), (1, 'pass', n))

    def test_reset_counts_from_rule_on_open_connection(self):
        with self.connect() as s:
            s.sendall(b'a' * 5000)
            self.assertEqual(recv_until(s, 5000), 5000)
            self.ctl(cmd='reset', after_bytes=1000, direction='s2c')
            s.sendall(b'b' * 5000)
            got = b''
            with self.assertRaises(ConnectionResetError):
                while (d := s.recv(65536)):
                    got += d
        self.assertEqual(got, b'b' * 1000)

    def test_reset_c2s_offset(self):
        n = 500_000
        self.ctl(cmd='reset', after_bytes=n, direction='c2s')
        slot = len(self.echo.received)
        with self.connect() as s:
            self.start_sender(s, os.urandom(4 * MB))
            with self.assertRaises(ConnectionResetError):
                while s.recv(65536):
                    pass
        time.sleep(0.1)
        self.assertLessEqual(abs(self.echo.received[slot] - n), 65536)
        self.assertEqual(self.ctl(cmd='stats')['bytes_c2s'], n)

    def test_stall_delays_then_resumes(self):
        n, secs, data = 200_000, 1.5, os.urandom(MB)
        self.ctl(cmd='stall', after_bytes=n, direction='s2c', seconds=secs)
        h = hashlib.sha256()
        with self.connect() as s:
            t0 = time.monotonic()
            self.start_sender(s, data)
            self.assertEqual(recv_until(s, n, h), n)
            t_first = time.monotonic() - t0
            self.assertEqual(recv_until(s, len(data) - n + 1, h), len(data) - n)
            elapsed = time.monotonic() - t0
        self.assertLess(t_first, secs)
        self.assertGreaterEqual(elapsed, secs)
        self.assertEqual(h.hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(self.ctl(cmd='stats')['stalls'], 1)

    def test_stall_forever_until_pass(self):
        data = os.urandom(300_000)
        r = self.ctl(cmd='stall', after_bytes=100_000, direction='s2c', seconds='forever')
        self.assertEqual(r['rule']['seconds'], 'forever')
        with self.connect() as s:
            self.start_sender(s, data)
            self.assertEqual(recv_until(s, 100_000), 100_000)
            s.settimeout(1.0)
            with self.assertRaises(socket.timeout):
                s.recv(65536)
            st = self.ctl(cmd='stats')
            self.assertEqual((st['stalls'], st['open'], st['bytes_s2c']), (1, 1, 100_000))
            self.assertEqual(self.ctl(cmd='pass')['mode'], 'pass')
            s.settimeout(10)
            self.assertEqual(recv_until(s, len(data)), len(data) - 100_000)

    def test_refuse_then_pass(self):
        self.assertEqual(self.ctl(cmd='refuse')['mode'], 'refuse')
        for _ in range(2):
            with self.connect() as s:
                try:
                    self.assertEqual(s.recv(10), b'')
                except ConnectionResetError:
                    pass
        self.ctl(cmd='pass')
        with self.connect() as s:
            s.sendall(b'hello')
            self.assertEqual(s.recv(10), b'hello')
        st = self.ctl(cmd='stats')
        self.assertEqual((st['connections'], st['refused']), (3, 2))

    def test_stats_and_reset_count(self):
        self.ctl(cmd='reset', after_bytes=1000, direction='c2s', count=2)
        for i in range(3):
            with self.connect() as s:
                s.sendall(b'x' * 3000)
                s.shutdown(socket.SHUT_WR)
                try:
                    got = recv_until(s, 10_000)
                    self.assertEqual((i, got), (2, 3000))
                except ConnectionResetError:
                    self.assertLess(i, 2)
        keep = self.connect()
        keep.sendall(b'abc')
        self.assertEqual(keep.recv(10), b'abc')
        st = self.ctl(cmd='stats')
        self.assertEqual({k: st[k] for k in ('connections', 'open', 'resets', 'stalls', 'mode')},
                         dict(connections=4, open=1, resets=2, stalls=0, mode='pass'))
        self.assertEqual(st['bytes_c2s'], 2000 + 3000 + 3)
        self.assertTrue(3003 <= st['bytes_s2c'] <= 2000 + 3003)  # reset ones may echo a bit
        keep.close()

    def test_ctl_helper_and_errors(self):
        out = subprocess.run([sys.executable, PROXY, 'ctl', '--control', self.ctl_path,
                              '{"cmd": "stats"}'], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(json.loads(out.stdout)['mode'], 'pass')
        for bad in (dict(cmd='nope'), dict(cmd='reset', direction='up'),
                    dict(cmd='stall', seconds=-1), dict(cmd='reset', count=0), dict(foo=1)):
            self.assertFalse(self.ctl(**bad)['ok'], bad)
        self.assertEqual(self.ctl(cmd='stats')['mode'], 'pass')

    def test_sigterm_exits_0(self):
        self.ctl(cmd='stall', after_bytes=10, direction='c2s', seconds='forever')
        a, b = self.connect(), self.connect()
        a.sendall(b'y' * 100)
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(5), 0)
        self.assertFalse(os.path.exists(self.ctl_path))
        for s in (a, b):
            s.settimeout(5)
            self.assertLessEqual(recv_until(s, 10_000), 10)  # FIN, not a hang
            s.close()


if __name__ == '__main__':
    unittest.main()
