"""`portcullis logs` against spool directories built here, byte by byte, from
the documented format (src/spool/segment.h): a second, independent writer of
the format, so that the reader and the documentation are both checked."""

import json
import os
import select
import signal
import struct
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PORTCULLIS_BIN", os.path.join(REPO, "build", "portcullis"))
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)

_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def header(segno, base_seq):
    h = b"PCSPOOL1" + struct.pack("<QQI", segno, base_seq, 0)
    return h + struct.pack("<I", crc32c(h))


def frame(seq, payload):
    ln = struct.pack("<I", len(payload))
    sq = struct.pack("<Q", seq)
    return ln + struct.pack("<I", crc32c(ln + sq + payload)) + sq + payload


def record(seq):
    return json.dumps({"id": "it-%d" % seq, "type": "request", "query": "SELECT %d" % seq,
                       "user": "al\"ice"}, separators=(",", ":")).encode()


def seg_path(d, segno):
    return os.path.join(str(d), "%020d.seg" % segno)


def write_segment(d, segno, seqs, tail=b""):
    with open(seg_path(d, segno), "wb") as f:
        f.write(header(segno, seqs[0] if seqs else 1))
        for s in seqs:
            f.write(frame(s, record(s)))
        f.write(tail)


def run_logs(*args, timeout=30):
    return subprocess.run([BIN, "logs", *args], capture_output=True, timeout=timeout)


def ids(stdout):
    return [json.loads(line)["id"] for line in stdout.decode().splitlines()]


@pytest.fixture(autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail("portcullis binary not found at %s (set PORTCULLIS_BIN)" % BIN)


def test_prints_all_records_in_order(tmp_path):
    write_segment(tmp_path, 1, [1, 2, 3])
    write_segment(tmp_path, 2, [4, 5])
    (tmp_path / "LOCK").write_bytes(b"")
    (tmp_path / "shipped.cursor").write_bytes(b"1 32\n")  # ignored by `logs`
    r = run_logs("--spool", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert ids(r.stdout) == ["it-%d" % i for i in range(1, 6)]
    assert json.loads(r.stdout.splitlines()[0])["user"] == 'al"ice'
    r2 = run_logs("--spool=%s" % tmp_path)
    assert r2.stdout == r.stdout


def test_spool_dir_from_connector_config(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    write_segment(spool, 1, [1, 2])
    cfg = tmp_path / "connector.yaml"
    cfg.write_text("control_plane: {config_dir: %s}\nlog_spool: {dir: %s}\n" % (tmp_path, spool))
    r = run_logs("-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert ids(r.stdout) == ["it-1", "it-2"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("log_spool: {dir: %s, colour: blue}\n" % spool)
    r = run_logs("--config", str(bad))
    assert r.returncode == 2 and b"colour" in r.stderr
    assert run_logs("-c", str(cfg), "--spool", str(spool)).returncode == 2


def test_empty_spool(tmp_path):
    r = run_logs("--spool", str(tmp_path))
    assert r.returncode == 0 and r.stdout == b""


def test_damage_is_never_printed(tmp_path):
    # sealed segment: record 2 of 4 has a flipped payload byte -> 1 only
    data = bytearray(header(1, 1) + b"".join(frame(s, record(s)) for s in (1, 2, 3, 4)))
    off = len(header(1, 1)) + len(frame(1, record(1))) + 20
    data[off] ^= 0x01
    open(seg_path(tmp_path, 1), "wb").write(bytes(data))
    # a segment with a broken header is skipped entirely
    open(seg_path(tmp_path, 2), "wb").write(b"NOTASPOOL" * 8)
    # newest segment: a torn record and then zeros
    torn = frame(7, record(7))[:-5]
    write_segment(tmp_path, 3, [5, 6], tail=torn)
    r = run_logs("--spool", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert ids(r.stdout) == ["it-1", "it-5", "it-6"]
    assert b"skipped 2 corrupt" in r.stderr


def test_usage_errors(tmp_path):
    assert run_logs().returncode == 2
    assert run_logs("--spool").returncode == 2
    assert run_logs("--spool", str(tmp_path), "--what").returncode == 2
    h = run_logs("--help")
    assert h.returncode == 0 and b"usage: portcullis logs" in h.stdout
    missing = run_logs("--spool", str(tmp_path / "nope"))
    assert missing.returncode == 1 and b"No such file" in missing.stderr


class Follower:
    def __init__(self, d):
        self.p = subprocess.Popen([BIN, "logs", "--spool", str(d), "--follow"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""

    def line(self, timeout=20):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "no line from logs --follow"
            ready, _, _ = select.select([self.p.stdout], [], [], left)
            if ready:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, "logs --follow exited: %r" % self.p.stderr.read()
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)["id"]

    def stop(self, sig):
        self.p.send_signal(sig)
        rc = self.p.wait(timeout=10)
        rest = self.p.stdout.read()
        return rc, self.buf + rest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_follow_live_spool(tmp_path, sig):
    write_segment(tmp_path, 1, [1])
    f = Follower(tmp_path)
    try:
        assert f.line() == "it-1"
        # a batch arrives in two writes: the half-written record is held back
        whole = frame(2, record(2)) + frame(3, record(3))
        with open(seg_path(tmp_path, 1), "ab") as seg:
            seg.write(whole[:30])
            seg.flush()
            time.sleep(0.3)
            seg.write(whole[30:])
        assert f.line() == "it-2"
        assert f.line() == "it-3"
        # the writer restarts: a newer segment; the old one gets a torn tail first
        with open(seg_path(tmp_path, 1), "ab") as seg:
            seg.write(frame(4, record(4))[:10])
        write_segment(tmp_path, 2, [5, 6])
        assert f.line() == "it-5"
        assert f.line() == "it-6"
        rc, rest = f.stop(sig)
        assert rc == 0
        assert rest == b""
    finally:
        if f.p.poll() is None:
            f.p.kill()
            f.p.wait()
