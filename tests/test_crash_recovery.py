"""Crash recovery under external SIGKILLs at arbitrary moments of checkpoint
writing (tests/test_training.py kills at one fixed point, from inside): a
training child is killed repeatedly while a checkpoint is being written
(model files, optimizer, trainer state, fsync, rename, LATEST pointer), each
time resumed from what is on disk; the previous checkpoint always loads, and
the run finished across four crashes equals an uninterrupted run with the
same seed bit for bit."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

import o1pruner
from o1pruner.models import TinyLM
from o1pruner.train import Trainer, latest_checkpoint

import training_helpers as TH
from test_training import ROOT, TESTS, _cfg, _no_time

# The child trains with a checkpoint after every step; each stage of the write
# is slowed down so that a kill timed from the parent lands inside it.
CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    import o1pruner
    import o1pruner.train.checkpoint as T
    from o1pruner.models import TinyLM
    import training_helpers as TH
    from test_training import _cfg

    real_save, real_fsync, real_json = TinyLM.save, T._fsync_tree, T._io.write_json

    def slow_save(self, path, **kw):
        time.sleep(0.05)
        real_save(self, path, **kw)
        time.sleep(0.05)

    def slow_fsync(path):
        time.sleep(0.05)
        real_fsync(path)

    def slow_json(path, obj, *a, **kw):
        if str(path).endswith("LATEST"):
            time.sleep(0.05)  # renamed into place, LATEST not yet pointing at it
        real_json(path, obj, *a, **kw)

    TinyLM.save, T._fsync_tree, T._io.write_json = slow_save, slow_fsync, slow_json
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    o1pruner.Trainer(TH.tiny_model(), ds, TH.TOK, _cfg(checkpoint_every=1), out_dir={out!r},
                     progress=False).train()
    print("finished")
""")


def _step(out):
    ck = latest_checkpoint(out) if out.exists() else None
    return -1 if ck is None else int(os.path.basename(ck).split("-")[1])


def _writing(ck_dir):
    try:
        return any(d.endswith(".tmp") for d in os.listdir(ck_dir))
    except FileNotFoundError:
        return False


def test_repeated_sigkill_during_checkpoint_writes(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=ROOT, tests=TESTS, out=str(out)))
    ck_dir = out / "checkpoints"
    rng = random.Random(8)
    steps_seen = []
    for kill in range(4):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # let this run complete one checkpoint, wait for its next write to
            # start, then kill at a random moment of it (0 to 0.25 s: any stage
            # of the ~0.2 s write)
            start = _step(out)
            deadline = time.time() + 120
            while _step(out) <= start and proc.poll() is None and time.time() < deadline:
                time.sleep(0.002)
            while not _writing(ck_dir) and proc.poll() is None and time.time() < deadline:
                time.sleep(0.002)
            assert proc.poll() is None, f"the child ended before it was killed: {proc.communicate()[1][-2000:]}"
            time.sleep(rng.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        ck = latest_checkpoint(out)
        m = TinyLM.load(ck)  # the last complete checkpoint is whole and loads
        assert np.isfinite(m.flat_parameters).all()
        steps_seen.append(_step(out))
    # each run got one checkpoint further before its crash
    assert steps_seen == sorted(set(steps_seen)) and steps_seen[-1] >= 4, steps_seen
    # the last run finishes from what the crashes left
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=300)
    assert done.returncode == 0 and b"finished" in done.stdout, done.stderr.decode()[-2000:]
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    full = Trainer(TH.tiny_model(), ds, TH.TOK, _cfg(checkpoint_every=None), progress=False)
    want = full.train()
    final = TinyLM.load(out / "model")
    np.testing.assert_array_equal(final.flat_parameters, full.model.flat_parameters)
    assert _no_time(o1pruner.io.read_jsonl(out / "train_log.jsonl")) == _no_time(want)
    assert not any(d.endswith(".tmp") for d in os.listdir(ck_dir))


def test_interrupted_pointer_write_leaves_no_temp_file(tmp_path):
    """A SIGKILL inside the atomic write of checkpoints/LATEST leaves its temp
    file (.LATEST.<random>.tmp); the next checkpoint removes it (it used to
    stay forever: the clean-up only removed folders)."""
    ds = o1pruner.build_dataset(TH.tiny_samples(5, 4))
    Trainer(TH.tiny_model(), ds, TH.TOK, _cfg(), out_dir=tmp_path, progress=False).train(max_steps=2)
    ck_dir = tmp_path / "checkpoints"
    (ck_dir / ".LATEST.k1ll3d.tmp").write_text('{"dir": "step-0000')
    Trainer(TH.tiny_model(), ds, TH.TOK, _cfg(), out_dir=tmp_path, progress=False).train()
    assert sorted(os.listdir(ck_dir)) == ["LATEST", "step-000009"]
