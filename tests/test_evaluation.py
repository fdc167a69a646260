"""fewshot evaluate and fewshot compare end to end on a tiny run folder, and their errors."""

import json
import shutil

import pytest

import fewshot.eval.report as report_module
from fewshot import cli
from fewshot.eval.records import Records

TRAIN = ["train", "--family", "point-nav", "--iterations", "2", "--maml.meta_batch_size", "2",
         "--maml.episodes_per_task", "2", "--horizon", "15", "--maml.hidden_sizes", "[8]",
         "--no-progress"]
SMALL = ["--episodes", "2", "--tasks", "3", "--trials", "2", "--no-progress"]
FILES = ("records.csv.gz", "tasks.json", "summary.json", "report.md", "adaptation-curves.png")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "maml-point-nav-s0"
    assert cli.main([*TRAIN, "--out", str(out)]) == 0
    return out


def fresh_copy(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def test_evaluate_writes_records_summary_report_and_figure(run_dir, tmp_path, capsys):
    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL]) == 0
    folder = run / "evaluation"
    assert all((folder / name).is_file() for name in FILES)
    records = Records.read_csv(folder / "records.csv.gz")
    assert len(records) == 2 * 3 * 2 * 3  # splits x tasks x trials x (K + 1)
    assert set(records["learner"]) == {"maml-point-nav"}  # the folder name minus -s0
    summary = json.loads((folder / "summary.json").read_text())
    entry = summary["learners"]["maml-point-nav"]
    assert [p["k"] for p in entry["splits"]["test-id"]["curve"]] == [0, 1, 2]
    assert {"mean", "iqm"} <= set(entry["splits"]["test-ood"]["curve"][0])
    assert len(entry["generalization_gap"]) == 3
    assert summary["info"]["options"] == {}
    assert summary["info"]["git_revision"] and summary["info"]["versions"]["torch"]
    assert records.outcomes == ["success"]  # point-nav's declared outcome, in every row
    point = entry["splits"]["test-id"]["curve"][0]
    assert set(point["outcomes"]) == {"success"}
    assert 0.0 <= point["outcomes"]["success"]["value"] <= 1.0
    frozen = json.loads((folder / "tasks.json").read_text())
    assert len(frozen["splits"]["test-id"]) == 3
    printed = capsys.readouterr().out
    assert "| k | test-id mean [95% CI]" in printed and "adaptation gain" in printed
    assert "Rate of `success` [95% CI]" in printed
    assert not list(run.glob(".evaluation*"))


def test_reference_learners_and_compare_side_by_side(run_dir, tmp_path, capsys):
    run = fresh_copy(run_dir, tmp_path)
    for learner in ("trained", "scripted-oracle", "random", "non-adaptive"):
        assert cli.main(["evaluate", str(run), *SMALL, "--learner", learner]) == 0
    assert (run / "evaluation-scripted-oracle" / "records.csv.gz").is_file()
    out = tmp_path / "comparison"
    assert cli.main(["compare", str(run), str(run / "evaluation-scripted-oracle"),
                     str(run / "evaluation-random"), "--out", str(out)]) == 0
    assert all((out / name).is_file() for name in FILES)
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["learners"]) == ["maml-point-nav", "scripted-oracle", "random"]
    oracle_vs_random = [r for r in summary["probability_of_improvement"]
                        if r["a"] == "scripted-oracle" and r["b"] == "random"]
    assert len(oracle_vs_random) == 2 * 3  # splits x k
    assert all(r["value"] > 0.9 for r in oracle_vs_random)
    assert "Probability of improvement" in capsys.readouterr().out


def test_compare_refuses_evaluations_on_different_tasks(run_dir, tmp_path):
    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL]) == 0
    assert cli.main(["evaluate", str(run), *SMALL, "--learner", "scripted-oracle",
                     "--eval-seed", "1"]) == 0
    with pytest.raises(SystemExit, match="different tasks"):
        cli.main(["compare", str(run), str(run / "evaluation-scripted-oracle"),
                  "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="no evaluation"):
        cli.main(["compare", str(run), str(tmp_path), "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="same learner and run"):
        cli.main(["compare", str(run), str(run / "evaluation"), "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()


def compared_with_frozen_tasks_edited(run_dir, tmp_path, edit) -> dict:
    """Evaluate a run as trained and as the scripted oracle, edit the oracle's frozen
    tasks with `edit(splits)`, compare the two; returns the comparison's summary."""
    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL]) == 0
    assert cli.main(["evaluate", str(run), *SMALL, "--learner", "scripted-oracle"]) == 0
    frozen_path = run / "evaluation-scripted-oracle" / "tasks.json"
    frozen = json.loads(frozen_path.read_text())
    edit(frozen["splits"])
    frozen_path.write_text(json.dumps(frozen))
    out = tmp_path / "c"
    assert cli.main(["compare", str(run), str(run / "evaluation-scripted-oracle"),
                     "--out", str(out)]) == 0
    return {**json.loads((out / "summary.json").read_text()),
            "tasks": json.loads((out / "tasks.json").read_text())}


def test_compare_leaves_out_a_split_whose_tasks_differ_and_names_it(run_dir, tmp_path):
    # runs trained on different levels share their test splits, not their train split
    def other_tasks(splits):
        splits["test-ood"] = splits["test-ood"][:1]

    summary = compared_with_frozen_tasks_edited(run_dir, tmp_path, other_tasks)
    assert summary["info"]["splits_left_out"] == ["test-ood"]
    assert {row["split"] for row in summary["probability_of_improvement"]} == {"test-id"}
    assert all(list(entry["splits"]) == ["test-id"] for entry in summary["learners"].values())
    assert list(summary["tasks"]["splits"]) == ["test-id"]


def test_tasks_frozen_a_bit_apart_are_the_same_tasks(run_dir, tmp_path):
    # another machine's exp may round a sampled value the other way: still the same task
    def nudged(splits):
        for split, nudge in (("test-id", 1e-15), ("test-ood", 1e-6)):
            task = splits[split][0]
            name = next(k for k, v in task.items() if isinstance(v, float) and v != 0)
            task[name] *= 1 + nudge

    summary = compared_with_frozen_tasks_edited(run_dir, tmp_path, nudged)
    assert summary["info"]["splits_left_out"] == ["test-ood"]


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="is not a run folder"):
        cli.main(["evaluate", str(tmp_path), *SMALL])
    assert not (tmp_path / "evaluation").exists()


def test_a_missing_or_corrupt_checkpoint_is_refused(run_dir, tmp_path):
    run = fresh_copy(run_dir, tmp_path)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="corrupt"):
        cli.main(["evaluate", str(run), *SMALL])
    (run / "checkpoint.pt").unlink()
    with pytest.raises(SystemExit, match="no checkpoint"):
        cli.main(["evaluate", str(run), *SMALL])
    assert not (run / "evaluation").exists()


def test_later_step_scale_is_recorded_and_refused_where_there_are_no_inner_steps(
        run_dir, tmp_path):
    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL, "--later-step-scale", "0.5"]) == 0
    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    assert summary["info"]["options"] == {"later_step_scale": 0.5}
    with pytest.raises(SystemExit, match="learner non-adaptive of a maml run takes no option "
                                         "later_step_scale; its options: none"):
        cli.main(["evaluate", str(run), *SMALL, "--learner", "non-adaptive",
                  "--later-step-scale", "0.5"])
    assert not (run / "evaluation-non-adaptive").exists()


def test_an_undeclared_split_or_negative_k_is_refused(run_dir, tmp_path, capsys):
    run = fresh_copy(run_dir, tmp_path)
    with pytest.raises(SystemExit, match="does not declare the splits \\['test-far'\\]"):
        cli.main(["evaluate", str(run), "--splits", "test-far", *SMALL])
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(run), *SMALL, "--episodes", "-1"])
    assert "--episodes: must be an integer >= 0" in capsys.readouterr().err
    assert not (run / "evaluation").exists()


def test_the_oracle_is_refused_on_a_family_without_one(tmp_path):
    run = tmp_path / "cheetah"
    assert cli.main(["train", "--family", "cheetah-vel", "--iterations", "1",
                     "--maml.meta_batch_size", "1", "--maml.episodes_per_task", "1",
                     "--horizon", "5", "--maml.hidden_sizes", "[4]", "--no-progress",
                     "--out", str(run)]) == 0
    with pytest.raises(SystemExit, match="family 'cheetah-vel' declares no scripted oracle"):
        cli.main(["evaluate", str(run), *SMALL, "--learner", "scripted-oracle"])
    assert not (run / "evaluation-scripted-oracle").exists()


def test_a_failed_evaluation_leaves_no_partial_results_and_keeps_the_old_ones(
        run_dir, tmp_path, monkeypatch):
    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL]) == 0
    old = (run / "evaluation" / "records.csv.gz").read_bytes()

    def broken_plot(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(report_module, "plot_curves", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        cli.main(["evaluate", str(run), *SMALL, "--eval-seed", "5"])
    assert (run / "evaluation" / "records.csv.gz").read_bytes() == old
    assert not list(run.glob(".evaluation*"))


def test_the_demo_trains_evaluates_four_learners_and_compares_them(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--iterations", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| learner | test-id R(0) | test-id R(20) |" in printed
    summary = json.loads((out / "comparison" / "summary.json").read_text())
    assert list(summary["learners"]) == ["maml-point-nav", "maml-point-nav-non-adaptive",
                                         "oracle", "random"]
    assert (out / "comparison" / "adaptation-curves.png").is_file()
    # run again: the finished run is kept (resumed, nothing to do), results rewritten
    assert cli.main(["demo", "--iterations", "1", "--out", str(out), "--no-progress"]) == 0
    metrics = (out / "maml-point-nav-s0" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 2  # header and the one iteration, not trained twice


def test_evaluation_runs_with_the_runs_torch_threads_whatever_the_process_has(
        run_dir, tmp_path, monkeypatch):
    import torch

    import fewshot.eval.evaluation as evaluation_module

    seen = []
    original = evaluation_module.evaluate

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation_module, "evaluate", recording)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert cli.main(["evaluate", str(fresh_copy(run_dir, tmp_path)), *SMALL]) == 0
        assert seen == [1]  # the run's torch_threads, its sampling setting
        assert torch.get_num_threads() == 2  # and the process's own afterwards
    finally:
        torch.set_num_threads(previous)


def test_an_unwritable_out_is_refused_before_the_evaluation_runs(run_dir, tmp_path,
                                                                  monkeypatch):
    import fewshot.eval.evaluation as evaluation

    def never(*args, **kwargs):
        raise AssertionError("evaluated although the output cannot be written")
    monkeypatch.setattr(evaluation, "evaluate", never)
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    with pytest.raises(SystemExit, match="is a file; an evaluation is a folder"):
        cli.main(["evaluate", str(run_dir), *SMALL, "--out", str(blocker)])
    with pytest.raises(SystemExit, match=f"{blocker} .*is a file; a folder of evaluations"):
        cli.main(["evaluate", str(run_dir), *SMALL, "--out", str(blocker / "eval")])


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],                 # cut short
    lambda data: data[:10] + b"\x00" * 20 + data[30:],   # corrupt
    lambda data: b"\xff\xfe binary",                     # not gzip at all
])
def test_a_damaged_records_file_is_named(run_dir, tmp_path, damage):
    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL]) == 0
    path = run / "evaluation" / "records.csv.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SystemExit, match=f"{path} is not a records file"):
        cli.main(["compare", str(run), str(run), "--out", str(tmp_path / "both")])


def test_a_records_row_cut_short_is_named(tmp_path):
    path = tmp_path / "records.csv"
    path.write_text("learner,run,k,return\nmaml,r,0,1.5\nmaml,r\n")
    with pytest.raises(ValueError, match=f"{path} is not a records file"):
        Records.read_csv(path)


def test_a_negative_eval_seed_is_refused_naming_the_flag(run_dir, capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(run_dir), *SMALL, "--eval-seed", "-1"])
    assert "--eval-seed: must be an integer >= 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--tasks", "--trials", "--episodes"])
def test_an_evaluation_that_cannot_fit_is_refused_before_it_starts(run_dir, tmp_path, flag):
    with pytest.raises(SystemExit, match=r"needs about .* of memory; this machine has"):
        cli.main(["evaluate", str(run_dir), *SMALL, flag, "1000000000000",
                  "--out", str(tmp_path / "eval")])
    assert not (tmp_path / "eval").exists()


def test_ctrl_c_during_a_command_ends_with_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "families_command", interrupted)
    assert cli.main(["families"]) == 130
    assert capsys.readouterr().err.strip() == "fewshot families: interrupted; nothing was written"


def test_two_evaluations_publishing_to_one_folder_both_succeed(run_dir, tmp_path):
    import threading

    from fewshot.eval.evaluation import load_evaluation, write_folder

    run = fresh_copy(run_dir, tmp_path)
    assert cli.main(["evaluate", str(run), *SMALL]) == 0
    records, frozen, _ = load_evaluation(run)
    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    out, errors = tmp_path / "shared", []

    def publish(title):
        try:
            for _ in range(5):
                write_folder(out, records=records, summary=summary, frozen=frozen,
                             title=title)
        except Exception as error:  # any failure is the test's failure
            errors.append(error)
    threads = [threading.Thread(target=publish, args=(t,)) for t in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (out / "records.csv.gz").read_bytes() == records.to_csv_gz()
