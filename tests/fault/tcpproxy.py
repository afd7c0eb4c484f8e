#!/usr/bin/env python3
"""tcpproxy.py - userspace TCP fault proxy for the fault matrix (the kernel has no netem).

Forwards opaque bytes (e.g. mTLS between two duchies; it never decrypts) and injects faults
chosen at runtime.  Python 3.11 stdlib only; one thread, one selector, non-blocking sockets,
64 KiB reads.

  tcpproxy.py --listen 127.0.0.1:0 --target 127.0.0.1:7001 --control /tmp/p.sock \
              [--ready-file /tmp/p.json]
      Port 0 picks a free port; {"port": N, "pid": P} goes to --ready-file and to stdout
      (one line, flushed).  SIGTERM/SIGINT closes every socket and exits 0.  Events (listen,
      accept, close, rst, refuse, reset, stall, resume, rule, error, shutdown) are JSON lines
      {"ts": unix time, "event": ..., ...} on stderr.
  tcpproxy.py ctl --control /tmp/p.sock '{"cmd": "stats"}'
      Sends one command, prints the one-line JSON reply (exit 1 if "ok" is false).

Control channel: unix stream socket at --control, one JSON line per command, one reply line.
  {"cmd": "pass"}      forward normally (the default); also ends every stall in progress.
  {"cmd": "refuse"}    accept new connections and close them at once (open ones continue).
  {"cmd": "reset", "after_bytes": N, "direction": "c2s"|"s2c", "count": K}
      The next K connections (default 1) to carry N bytes in that direction get an abrupt
      RST on both sides (SO_LINGER 0) right after the N-th byte (the proxy waits up to 1 s
      for those N bytes to leave its send queue first).  Then the mode reverts to pass.
  {"cmd": "stall", "after_bytes": N, "direction": ..., "seconds": S|"forever", "count": K}
      Connections that carry N bytes in that direction stop forwarding both ways for S
      seconds (sockets stay open), then resume intact; "forever" lasts until a pass.  The
      rule stays until replaced (or until K connections, default unlimited, have stalled).
  {"cmd": "stats"}     -> {"ok": true, "connections": total, "open": n, "bytes_c2s": n,
      "bytes_s2c": n, "resets": n, "stalls": n, "refused": n, "mode": "pass", "rule": {...}}
  N counts per connection: for connections open when the rule is set, bytes read after that
  moment; for later ones, from their start.  Each connection trips a given rule at most once.
  Other replies: {"ok": true, "mode": ..., "rule": {...}} or {"ok": false, "error": "..."}.
"""
import argparse
import contextlib
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time

CHUNK = 65536
LINGER0 = struct.pack('ii', 1, 0)
DIRS = ('c2s', 's2c')  # d[0] = source side, d[2] = destination side
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
INF = float('inf')


def log(event, **kw):
    sys.stderr.write(json.dumps({'ts': round(time.time(), 6), 'event': event, **kw}) + '\n')
    sys.stderr.flush()


def hostport(s):
    host, _, port = s.rpartition(':')
    return host.strip('[]') or '127.0.0.1', int(port)


class Conn:
    def __init__(self, cid, csock, ssock):
        self.id, self.sock, self.connected = cid, {'c': csock, 's': ssock}, False
        self.mask = {'c': 0, 's': 0}
        self.fwd = dict.fromkeys(DIRS, 0)      # bytes written to the destination
        self.base = dict.fromkeys(DIRS, 0)     # bytes read before the current rule was set
        self.pend = dict.fromkeys(DIRS, b'')   # memoryview still to be written
        self.held = dict.fromkeys(DIRS, b'')   # bytes held back behind a trigger
        self.trigger = dict.fromkeys(DIRS)     # 'reset' / 'stall' once pend drains
        self.eof = dict.fromkeys(DIRS, False)  # source sent FIN
        self.shut = dict.fromkeys(DIRS, False)  # FIN passed on
        self.tripped = -1                      # id of the rule this connection tripped
        self.stall_until, self.drain = 0.0, None  # drain = (deadline, side) of a pending RST


class Proxy:
    def __init__(self, listen, target, control):
        self.sel, self.control = selectors.DefaultSelector(), control
        self.target = socket.getaddrinfo(*target, type=socket.SOCK_STREAM)[0]
        self.lsock = socket.create_server(listen, backlog=128)
        if os.path.exists(control):
            os.unlink(control)
        self.csock = socket.create_server(control, family=socket.AF_UNIX)
        self.wake_r, self.wake_w = socket.socketpair()
        for s, fn in ((self.lsock, self.on_accept), (self.csock, self.on_ctl_accept),
                      (self.wake_r, lambda s, ev: s.recv(4096)), (self.wake_w, None)):
            s.setblocking(False)
            if fn:
                self.sel.register(s, R, fn)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        self.conns, self.ctl, self.timed = {}, {}, set()
        self.rule, self.rule_id = {'cmd': 'pass'}, 0
        self.stats = dict(connections=0, bytes_c2s=0, bytes_s2c=0, resets=0, stalls=0, refused=0)
        self.running = True

    def on_signal(self, signum, frame):
        self.running = False

    # ---- main loop ---------------------------------------------------------------------
    def run(self):
        while self.running:
            for key, ev in self.sel.select(self.timeout()):
                try:
                    key.data(key.fileobj, ev)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:  # e.g. EMFILE on accept: log, keep serving
                    log('error', error=str(e))
            self.tick()
        self.shutdown()

    def timeout(self):
        if any(c.drain for c in self.timed):
            return 0.005  # polling the send queue of a connection about to be reset
        return max(0.0, min([1.0] + [c.stall_until - time.monotonic() for c in self.timed]))

    def tick(self):
        now = time.monotonic()
        for c in list(self.timed):
            if c.drain:
                deadline, side = c.drain
                if now >= deadline or outq(c.sock[side]) == 0:
                    self.abort(c, 'reset')
            elif c.stall_until <= now:
                c.stall_until = 0.0
                self.timed.discard(c)
                log('resume', conn=c.id)
                self.update(c)

    def shutdown(self):
        signal.set_wakeup_fd(-1)
        log('shutdown', open=len(self.conns), **self.stats)
        for c in list(self.conns.values()):
            self.close(c, 'shutdown')
        for s in [self.lsock, self.csock, self.wake_r, self.wake_w, *self.ctl]:
            s.close()
        self.sel.close()
        with contextlib.suppress(OSError):
            os.unlink(self.control)

    # ---- connections -------------------------------------------------------------------
    def on_accept(self, lsock, ev):
        for _ in range(64):
            cs, peer = lsock.accept()  # BlockingIOError ends the batch
            self.stats['connections'] += 1
            cid = self.stats['connections']
            if self.rule['cmd'] == 'refuse':
                self.stats['refused'] += 1
                cs.close()
                log('refuse', conn=cid, peer=peer[:2])
                continue
            fam, typ, proto, _, addr = self.target
            ss = socket.socket(fam, typ, proto)
            for s in (cs, ss):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(cid, cs, ss)
            self.conns[cid] = c
            log('accept', conn=cid, peer=peer[:2])
            err = ss.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                log('error', conn=cid, side='s', error=os.strerror(err))
                self.abort(c, 'connect failed')
            else:
                self.update(c)

    def setmask(self, c, side, m):
        old = c.mask[side]
        if m != old:
            s = c.sock[side]
            if not old:
                self.sel.register(s, m, lambda s, ev: self.on_conn(c, side, ev))
            elif not m:
                self.sel.unregister(s)
            else:
                self.sel.modify(s, m, self.sel.get_key(s).data)
            c.mask[side] = m

    def update(self, c):
        if not c.connected:
            return self.setmask(c, 's', W)
        frozen = c.stall_until > 0 or c.drain is not None
        for side, other in (('c', 's'), ('s', 'c')):
            out, inn, m = side + '2' + other, other + '2' + side, 0
            if not frozen:
                m = (0 if c.pend[out] or c.eof[out] else R) | (W if c.pend[inn] else 0)
            self.setmask(c, side, m)

    def on_conn(self, c, side, ev):
        if self.conns.get(c.id) is not c:
            return  # closed earlier in this batch of events
        try:
            if not c.connected:
                if (err := c.sock['s'].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
                    raise OSError(err, os.strerror(err))
                c.connected = True
            elif ev & W:
                self.flush(c, ('s2c' if side == 'c' else 'c2s'))
            if c.connected and ev & R and c.id in self.conns:
                self.read(c, ('c2s' if side == 'c' else 's2c'))
        except OSError as e:
            log('error', conn=c.id, side=side, error=e.strerror or str(e))
            self.abort(c, 'error')
        if c.id in self.conns:
            self.update(c)

    def read(self, c, d):
        data = c.sock[d[0]].recv(CHUNK)
        if not data:
            c.eof[d] = True
        else:
            n = self.plan(c, d, len(data))
            c.pend[d], c.held[d] = memoryview(data)[:n], data[n:]
        self.flush(c, d)

    def plan(self, c, d, n):
        """How many of n freshly read bytes may go before this connection trips the rule."""
        r = self.rule
        if r['cmd'] not in ('reset', 'stall') or r['direction'] != d or c.tripped == self.rule_id:
            return n
        left = r['after_bytes'] - (c.fwd[d] - c.base[d])
        if left > n:
            return n
        c.tripped, c.trigger[d], c.stall_secs = self.rule_id, r['cmd'], r.get('secs', 0.0)
        if r['count'] is not None:
            r['count'] -= 1
            if r['count'] <= 0:
                self.rule = {'cmd': 'pass'}  # budget spent
        return max(0, left)

    def flush(self, c, d):
        dst = c.sock[d[2]]
        while c.pend[d]:
            try:
                k = dst.send(c.pend[d])
            except (BlockingIOError, InterruptedError):
                return
            c.fwd[d] += k
            self.stats['bytes_' + d] += k
            c.pend[d] = c.pend[d][k:]
        trig, c.trigger[d] = c.trigger[d], None
        if trig == 'reset':
            self.stats['resets'] += 1
            log('reset', conn=c.id, direction=d, at=c.fwd[d])
            c.drain = (time.monotonic() + 1.0, d[2])
            self.timed.add(c)
        elif trig == 'stall':
            self.stats['stalls'] += 1
            log('stall', conn=c.id, direction=d, at=c.fwd[d], seconds=fmt_secs(c.stall_secs))
            c.stall_until = time.monotonic() + c.stall_secs
            c.pend[d], c.held[d] = memoryview(c.held[d]), b''
            self.timed.add(c)
        elif c.eof[d] and not c.shut[d]:
            dst.shutdown(socket.SHUT_WR)
            c.shut[d] = True
            if all(c.shut.values()):
                self.close(c)

    def close(self, c, why='eof', rst=False):
        for side in ('c', 's'):
            self.setmask(c, side, 0)
            if rst:
                with contextlib.suppress(OSError):
                    c.sock[side].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            c.sock[side].close()
        self.conns.pop(c.id, None)
        self.timed.discard(c)
        log('rst' if rst else 'close', conn=c.id, why=why,
            bytes_c2s=c.fwd['c2s'], bytes_s2c=c.fwd['s2c'])

    def abort(self, c, why):
        self.close(c, why, rst=True)

    # ---- control channel ---------------------------------------------------------------
    def on_ctl_accept(self, csock, ev):
        s, _ = csock.accept()
        s.setblocking(False)
        self.ctl[s] = b''
        self.sel.register(s, R, self.on_ctl)

    def on_ctl(self, s, ev):
        try:
            data = s.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b''
        if not data or len(self.ctl[s]) > 65536:
            self.sel.unregister(s)
            del self.ctl[s]
            return s.close()
        self.ctl[s] += data
        while b'\n' in self.ctl[s]:
            line, self.ctl[s] = self.ctl[s].split(b'\n', 1)
            if line.strip():
                try:
                    s.sendall((json.dumps(self.command(line)) + '\n').encode())
                except OSError:
                    pass

    def command(self, line):
        try:
            m = json.loads(line)
            cmd = m['cmd']
            if cmd == 'stats':
                return {'ok': True, **self.stats, 'open': len(self.conns), **self.mode()}
            rule = {'cmd': cmd}
            if cmd in ('reset', 'stall'):
                k = m.get('count', 1 if cmd == 'reset' else None)
                rule.update(after_bytes=int(m.get('after_bytes', 0)), count=k and int(k),
                            direction=m.get('direction', 'c2s'))
                if rule['direction'] not in DIRS or rule['after_bytes'] < 0 or k is not None \
                        and rule['count'] < 1:
                    raise ValueError('need direction c2s|s2c, after_bytes >= 0, count >= 1')
                if cmd == 'stall':
                    s = m.get('seconds', 'forever')
                    rule['secs'] = INF if s == 'forever' else float(s)
                    if not rule['secs'] >= 0:
                        raise ValueError('seconds must be >= 0 or "forever"')
            elif cmd not in ('pass', 'refuse'):
                raise ValueError('unknown cmd %r' % cmd)
        except (ValueError, KeyError, TypeError) as e:
            log('error', control=line.decode(errors='replace'), error=str(e))
            return {'ok': False, 'error': str(e)}
        self.rule, self.rule_id = rule, self.rule_id + 1
        for c in self.conns.values():
            for d in DIRS:
                c.base[d] = c.fwd[d] + len(c.pend[d]) + len(c.held[d])
                if cmd == 'pass' and c.trigger[d]:  # cancel a fault not yet fired
                    c.pend[d] = memoryview(bytes(c.pend[d]) + c.held[d])
                    c.held[d], c.trigger[d] = b'', None
            if cmd == 'pass' and c.stall_until:
                c.stall_until = 1e-9  # resumes at the next tick
        log('rule', **self.mode())
        return {'ok': True, **self.mode()}

    def mode(self):
        r = dict(self.rule)
        if 'secs' in r:
            r['seconds'] = fmt_secs(r.pop('secs'))
        return {'mode': r['cmd'], 'rule': r}


def fmt_secs(s):
    return 'forever' if s == INF else s


def outq(sock):
    try:
        return struct.unpack('i', fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b'\0' * 4))[0]
    except OSError:
        return 0


def ctl_main(argv):
    ap = argparse.ArgumentParser(prog='tcpproxy.py ctl')
    ap.add_argument('--control', required=True)
    ap.add_argument('command', help='one JSON command, e.g. \'{"cmd": "stats"}\'')
    a = ap.parse_args(argv)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(a.control)
        s.sendall(a.command.strip().encode() + b'\n')
        reply = s.makefile().readline().strip()
    print(reply)
    return 0 if reply and json.loads(reply).get('ok') else 1


def main(argv):
    if argv[:1] == ['ctl']:
        return ctl_main(argv[1:])
    ap = argparse.ArgumentParser(description='userspace TCP fault proxy')
    ap.add_argument('--listen', required=True, type=hostport)
    ap.add_argument('--target', required=True, type=hostport)
    ap.add_argument('--control', required=True)
    ap.add_argument('--ready-file')
    a = ap.parse_args(argv)
    p = Proxy(a.listen, a.target, a.control)
    port = p.lsock.getsockname()[1]
    ready = json.dumps({'port': port, 'pid': os.getpid()})
    if a.ready_file:
        with open(a.ready_file + '.tmp', 'w') as f:
            f.write(ready + '\n')
        os.replace(a.ready_file + '.tmp', a.ready_file)
    print(ready, flush=True)
    log('listen', port=port, target=list(a.target), control=a.control)
    p.run()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
