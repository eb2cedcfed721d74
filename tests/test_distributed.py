"""Training and evaluation on two CPU processes (gloo), started by torchrun as a user would."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pixseg.data import VOCSegmentation
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.evaluate import evaluate, predict_probs
from pixseg.engine.train import ResumableBatches, build_model, load_trained_model
from pixseg.metrics import ConfusionMatrix
from pixseg.models import create_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--config", "experiment_quick", "model.width=0.0625", "data.crop_size=32", "batch_size=2",
         "iterations=4", "val_every=3", "checkpoint_every=2"]


def torchrun(*args, cwd):
    """Run `torchrun --nproc_per_node 2 ARGS` (one thread per process) and return it finished."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=10, n_val=5, size=(40, 40), seed=1,
                              progress=False)


@pytest.fixture(scope="module")
def two_process_run(tiny_voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    run = torchrun("-m", "pixseg", "train", *TRAIN, f"data.root={tiny_voc}", "--out", str(out), cwd=out)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run


def test_shares_of_an_epoch_cover_it_once_and_reshuffle_per_epoch():
    ranks = [list(ResumableBatches(9, 2, seed=3, start=0, total=4, rank=r, world_size=2)) for r in (0, 1)]
    epochs = [[index for rank in ranks for batch in rank[e * 2:e * 2 + 2] for index, _ in batch] for e in (0, 1)]
    assert all(len(set(epoch)) == 8 for epoch in epochs)  # 4 images per process per epoch, none twice
    assert epochs[0] != epochs[1]
    seeds = [seed for rank in ranks for batch in rank for _, seed in batch]
    assert len(set(seeds)) == len(seeds)
    assert list(ResumableBatches(9, 2, seed=3, start=2, total=4, rank=1, world_size=2)) == ranks[1][2:]


def test_two_processes_train(two_process_run, tiny_voc):
    out, run = two_process_run
    assert "2 per process" in run.stdout and "4 images per update in total (2 process(es))" in run.stdout
    assert run.stdout.count("checkpoint:") == 1  # rank 0 alone reports
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], "split" in r) for r in records] == [(3, True), (4, False), (4, True)]  # written once
    assert records[1]["loss"] > 0 and records[2]["num_images"] == 5
    assert torch.load(out / "best.pt", weights_only=True)["step"] in (3, 4)
    # The processes' validation at step 4 scored the saved weights (batch norm statistics too) as
    # one process scores them.
    model, _ = load_trained_model(out / "checkpoint.pt")
    single = evaluate(model, VOCSegmentation(tiny_voc, "val"), "cpu", progress=False)
    assert records[2] == {"step": 4, "split": "val", **{k: v for k, v in single.items() if k != "iou"}}
    # The weights moved from where the seed put them: the processes trained.
    torch.manual_seed(0)
    from pixseg.engine.config import config_from_dict

    initial = dict(build_model(config_from_dict(state["config"])).named_parameters())
    assert sum(not torch.equal(value, state["model"][key]) for key, value in initial.items()) > len(initial) / 2


def test_two_process_run_killed_and_resumed_matches_an_uninterrupted_one(two_process_run, tiny_voc, tmp_path):
    straight, _ = two_process_run
    # Rank 0 kills itself (SIGKILL, nothing saved) at step 3's validation, after step 2's checkpoint;
    # torchrun then stops rank 1.
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys
        import pixseg.engine.train as train_module
        from pixseg.cli import main

        def evaluate(*args, **kwargs):
            if os.environ["RANK"] == "0":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        real, train_module.evaluate = train_module.evaluate, evaluate
        sys.exit(main(sys.argv[1:]))
    """))
    out = tmp_path / "run"
    args = ["train", *TRAIN, f"data.root={tiny_voc}", "--out", str(out)]
    killed = torchrun(str(script), *args, cwd=tmp_path)
    assert killed.returncode != 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    resumed = torchrun("-m", "pixseg", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    assert (out / "metrics.jsonl").read_text().count('"step": 4') == 2
    assert a["best"] == b["best"]


def test_resume_refuses_another_number_of_processes(two_process_run, tiny_voc, tmp_path):
    import shutil

    from pixseg.engine.config import load_config
    from pixseg.engine.train import train

    out, _ = two_process_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    config = load_config("experiment_quick", TRAIN[2:] + [f"data.root={tiny_voc}"])
    with pytest.raises(ValueError, match="trained by 2 process"):
        train(config, copy, resume=True, progress=False)


def test_sharded_evaluation_equals_one_process(tiny_voc, tmp_path):
    # 5 images on 2 processes: shares of 3 and 2, where DistributedSampler would repeat one. Each
    # process keeps the confusion matrix its scores come from. Then what validation in training
    # relies on: the batch norm statistics every process scores with are rank 0's.
    script = tmp_path / "evaluate.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, torch
        from pixseg.data import VOCSegmentation
        from pixseg.engine import distributed
        from pixseg.engine.evaluate import evaluate
        from pixseg.metrics import ConfusionMatrix
        from pixseg.models import create_model

        def keep(self):
            torch.save(self.matrix, f"matrix_{{os.environ['RANK']}}.pt")
            return compute(self)

        compute, ConfusionMatrix.compute = ConfusionMatrix.compute, keep
        with distributed.process_group(torch.device("cpu")):
            torch.manual_seed(0)
            model = create_model("fcn8s", 21, width=0.0625, padding="compact")
            metrics = evaluate(model, VOCSegmentation({str(tiny_voc)!r}, "val"), "cpu", progress=False)
            with open(f"metrics_{{os.environ['RANK']}}.json", "w") as handle:
                json.dump(metrics, handle)
            try:
                distributed.wrap_model(model, torch.device("cpu"), sync_batchnorm=True)
            except ValueError as error:
                open(f"sync_{{os.environ['RANK']}}.txt", "w").write(str(error))
            # A training forward on each process's own batch moves each one's batch norm statistics.
            net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
            batch = torch.full((2, 3, 8, 8), float(os.environ["RANK"]))
            distributed.wrap_model(net, torch.device("cpu"), sync_batchnorm=False)(batch)
            own = net[1].running_mean.clone()
            distributed.broadcast_buffers(net)
            torch.save([own, net[1].running_mean], f"buffers_{{os.environ['RANK']}}.pt")
    """))
    run = torchrun(str(script), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    torch.manual_seed(0)
    model = create_model("fcn8s", 21, width=0.0625, padding="compact")
    # Through JSON like the processes' results: NaN IoUs of absent classes compare equal as text.
    dataset = VOCSegmentation(tiny_voc, "val")
    single = json.loads(json.dumps(evaluate(model, dataset, "cpu", progress=False)))
    matrix = ConfusionMatrix(21)
    for index in range(5):
        image, label = dataset[index]
        matrix.update(predict_probs(model, image, "cpu").argmax(0), torch.as_tensor(label.astype("int64")))
    for rank in (0, 1):
        assert torch.equal(torch.load(tmp_path / f"matrix_{rank}.pt"), matrix.matrix)
        assert (tmp_path / f"metrics_{rank}.json").read_text() == json.dumps(single)
        # torch's SyncBatchNorm has no CPU kernel: said before training starts.
        assert "sync_batchnorm = true needs CUDA" in (tmp_path / f"sync_{rank}.txt").read_text()
    (own_0, shared_0), (own_1, shared_1) = (torch.load(tmp_path / f"buffers_{rank}.pt") for rank in (0, 1))
    assert not torch.equal(own_0, own_1) and torch.equal(shared_0, own_0) and torch.equal(shared_1, own_0)


def test_eval_command_on_two_processes_writes_what_one_process_writes(two_process_run, tiny_voc, tmp_path):
    from pixseg.cli import main

    out, _ = two_process_run
    args = ["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(tiny_voc), "--out"]
    run = torchrun("-m", "pixseg", *args, str(tmp_path / "two"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("mean IoU") == 1 and run.stdout.count("wrote") == 1  # rank 0 alone reports
    assert main([*args, str(tmp_path / "one")]) == 0
    # 5 images in shares of 3 and 2, the confusion matrices summed: the same file, byte for byte.
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["metrics_val.json"]
    assert (tmp_path / "two" / "metrics_val.json").read_text() == (tmp_path / "one" / "metrics_val.json").read_text()


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch, capsys):
    from pixseg.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["datasets"]) == 2
    assert "only `pixseg train` and `pixseg eval` run on several" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["datasets"]) == 0
