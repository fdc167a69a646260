"""Catastrophe prediction (fewshot/eval/prediction.py): step labels by hand on recorded
episodes, scores and AUCs against scikit-learn and hand-computed values, a bootstrap that
is seeded and resamples whole levels, refused input named, and end-to-end runs on a
lava-world batch of an actor-critic ensemble and of a Q-network ensemble (QAgent's
"values").

Letters: T steps, N trials, M members, A choices.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.func import functional_call

import tasks
from fewshot import cli
from fewshot.collect import Collector, env_spec
from fewshot.collect.agents import EnsembleAgent, QAgent, UniformAgent
from fewshot.eval.prediction import (
    GRID,
    Steps,
    auc_estimate,
    bootstrap_aucs,
    mean_auc,
    predict,
    predict_catastrophes,
    risk_scores,
    roc,
    step_labels,
)
from fewshot.nn.actor_critic import MarkovActorCritic
from fewshot.nn.ensemble import Ensemble
from fewshot.nn.policy import mlp

RESAMPLES = 50  # enough to exercise the bootstrap, quick enough for a test


def episodes(lengths: list[int], catastrophes: list[int | None], T: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Catastrophe flags and valid steps [T, N] of one episode per trial: trial n lasts
    lengths[n] steps and enters a catastrophe at step catastrophes[n] (None: never)."""
    valid_TN = np.arange(T)[:, None] < np.asarray(lengths)[None]
    catastrophe_TN = np.zeros_like(valid_TN)
    for n, s in enumerate(catastrophes):
        if s is not None:
            catastrophe_TN[s, n] = True
    return catastrophe_TN, valid_TN


def positives(label_TN: np.ndarray, n: int) -> list[int]:
    return np.flatnonzero(label_TN[:, n]).tolist()


# Labels -------------------------------------------------------------------------------

def test_a_step_is_positive_when_its_episode_enters_a_catastrophe_within_the_window():
    # trial 0: 6 steps, enters the lava at its last step (5); trial 1: 8 steps, none;
    # trial 2: 3 steps, none, with a stray flag after its end; trial 3: lava at step 0
    catastrophe_TN, valid_TN = episodes([6, 8, 3, 1], [5, None, None, 0], T=8)
    catastrophe_TN[6, 2] = True
    want = {1: [5], 5: [1, 2, 3, 4, 5], 6: [0, 1, 2, 3, 4, 5], 10: [0, 1, 2, 3, 4, 5]}
    for window, steps in want.items():
        label_TN = step_labels(catastrophe_TN, valid_TN, window)
        assert label_TN.shape == (8, 4) and label_TN.dtype == bool
        assert positives(label_TN, 0) == steps, window
        assert positives(label_TN, 1) == [] and positives(label_TN, 2) == [], window
        assert positives(label_TN, 3) == [0], window
        assert not label_TN[~valid_TN].any()  # after an episode's end: never positive


def test_labels_take_torch_tensors_as_a_batch_holds_them():
    catastrophe_TN, valid_TN = episodes([4], [3], T=5)
    from_torch = step_labels(torch.as_tensor(catastrophe_TN), torch.as_tensor(valid_TN), 2)
    assert positives(from_torch, 0) == [2, 3]


# Scores and AUCs ----------------------------------------------------------------------

def test_scores_are_alpha_mean_plus_beta_population_std_of_the_members():
    values_TNM = np.array([[[1.0, 3.0], [2.0, 2.0]], [[0.0, 4.0], [-1.0, 1.0]]])
    mu_TN = np.array([[2.0, 2.0], [2.0, 0.0]])
    sigma_TN = np.array([[1.0, 0.0], [2.0, 1.0]])  # ddof 0: half the range of two members
    np.testing.assert_allclose(risk_scores(values_TNM, -1, 0), -mu_TN)
    np.testing.assert_allclose(risk_scores(values_TNM, 0, 1), sigma_TN)
    np.testing.assert_allclose(risk_scores(values_TNM, -1, 2), -mu_TN + 2 * sigma_TN)
    np.testing.assert_allclose(risk_scores(torch.tensor(values_TNM), 0.5, 1),
                               0.5 * mu_TN + sigma_TN)


def fixed_example(seed: int = 0, T: int = 12, N: int = 8):
    """Members' values [T, N, 4], labels and valid steps [T, N], and levels [N] (two
    trials per level), with catastrophes more likely where the values are low."""
    rng = np.random.default_rng(seed)
    values_TNM = rng.normal(size=(T, N, 4))
    label_TN = rng.random((T, N)) < 1 / (1 + np.exp(3 * values_TNM.mean(-1)))
    valid_TN = np.arange(T)[:, None] < rng.integers(T // 2, T + 1, N)[None]
    return values_TNM, label_TN, valid_TN, np.arange(N) // 2


def test_the_auc_is_scikit_learns_over_the_valid_steps_and_inside_its_interval():
    values_TNM, label_TN, valid_TN, level_N = fixed_example()
    for alpha, beta in GRID:
        score_TN = risk_scores(values_TNM, alpha, beta)
        auc, used = auc_estimate(score_TN, label_TN, valid_TN, level_N, resamples=RESAMPLES)
        assert auc.value == roc_auc_score(label_TN[valid_TN], score_TN[valid_TN])
        assert auc.low <= auc.value <= auc.high and auc.low < auc.high
        assert 0 < used <= RESAMPLES
    # beta = 0 is mu alone: any alpha < 0 ranks as -mu does
    mu_only = roc_auc_score(label_TN[valid_TN], -values_TNM.mean(-1)[valid_TN])
    sigma_only = roc_auc_score(label_TN[valid_TN], values_TNM.std(-1)[valid_TN])
    for (alpha, beta), want in (((-1, 0), mu_only), ((-3, 0), mu_only), ((0, 1), sigma_only),
                                ((0, 0.5), sigma_only)):
        score_TN = risk_scores(values_TNM, alpha, beta)
        assert auc_estimate(score_TN, label_TN, valid_TN, level_N,
                            resamples=RESAMPLES)[0].value == pytest.approx(want, abs=1e-12)
    assert mu_only > 0.7  # the example's values do predict its catastrophes


def test_a_perfect_predictor_has_auc_one_and_a_reversed_one_zero():
    _, label_TN, valid_TN, level_N = fixed_example()
    for score_TN, want in ((label_TN * 1.0, 1.0), (-1.0 * label_TN, 0.0)):
        auc, _ = auc_estimate(score_TN, label_TN, valid_TN, level_N, resamples=RESAMPLES)
        assert (auc.value, auc.low, auc.high) == (want, want, want)
        curve = roc(score_TN, label_TN, valid_TN)
        corner = (0.0, 1.0) if want else (1.0, 0.0)  # (fpr, tpr) the curve passes through
        assert corner in set(zip(curve.fpr.tolist(), curve.tpr.tolist(), strict=True))


def test_a_roc_curve_is_thinned_keeping_its_ends():
    values_TNM, label_TN, valid_TN, _ = fixed_example(T=40, N=10)
    score_TN = risk_scores(values_TNM, -1, 1)
    full, thin = roc(score_TN, label_TN, valid_TN, points=10**6), roc(score_TN, label_TN,
                                                                       valid_TN, points=7)
    assert full.fpr.size > 7 and thin.fpr.size == 7
    for name in ("fpr", "tpr", "thresholds"):
        assert getattr(thin, name)[0] == getattr(full, name)[0]
        assert getattr(thin, name)[-1] == getattr(full, name)[-1]
    assert thin.as_dict()["thresholds"][0] is None  # sklearn's inf, above every score
    json.dumps(thin.as_dict(), allow_nan=False)


# The bootstrap ------------------------------------------------------------------------

def test_the_interval_is_seeded():
    values_TNM, label_TN, valid_TN, level_N = fixed_example()
    score_TN = risk_scores(values_TNM, -1, 1)
    first = auc_estimate(score_TN, label_TN, valid_TN, level_N, seed=3, resamples=RESAMPLES)
    again = auc_estimate(score_TN, label_TN, valid_TN, level_N, seed=3, resamples=RESAMPLES)
    other = auc_estimate(score_TN, label_TN, valid_TN, level_N, seed=4, resamples=RESAMPLES)
    assert first == again and first[0] != other[0]


def test_the_bootstrap_resamples_whole_levels():
    # level 0 (trials 0, 1): positives at 0.9, negatives at 0.1 and 0.95: AUC 1/2 alone;
    # level 1 (trial 2): a positive at 0.6 above a negative at 0.5: AUC 1 alone; together
    # 4 of 6 pairs are ordered. Resampling levels can only give these three AUCs.
    score_TN = np.array([[0.9, 0.9, 0.6], [0.1, 0.95, 0.5]])
    label_TN = np.array([[True, True, True], [False, False, False]])
    valid_TN = np.ones((2, 3), dtype=bool)
    level_N = np.array([0, 0, 1])
    aucs = bootstrap_aucs(score_TN, label_TN, valid_TN, level_N, seed=0, resamples=RESAMPLES)
    assert aucs.size == RESAMPLES
    assert set(np.round(aucs, 12)) == {0.5, round(2 / 3, 12), 1.0}
    # one level: every resample is the data, and the interval is the point
    auc, used = auc_estimate(score_TN, label_TN, valid_TN, np.zeros(3), resamples=RESAMPLES)
    assert auc.low == auc.value == auc.high == pytest.approx(2 / 3) and used == RESAMPLES


def test_resamples_with_a_single_class_are_skipped():
    # level 0 holds negative steps only: drawing it twice leaves nothing to rank
    score_TN = np.array([[0.2, 0.9], [0.1, 0.3]])
    label_TN = np.array([[False, True], [False, False]])
    valid_TN = np.ones((2, 2), dtype=bool)
    aucs = bootstrap_aucs(score_TN, label_TN, valid_TN, np.array([0, 1]), seed=0,
                          resamples=RESAMPLES)
    assert 0 < aucs.size < RESAMPLES and set(aucs) == {1.0}
    _, used = auc_estimate(score_TN, label_TN, valid_TN, np.array([0, 1]), seed=0,
                           resamples=RESAMPLES)
    assert used == aucs.size


# Several runs on the same levels ------------------------------------------------------

def example_steps(seed: int) -> Steps:
    """fixed_example as a step record: window 1's positives are the catastrophes."""
    values_TNM, label_TN, valid_TN, level_N = fixed_example(seed)
    return Steps(mu_TN=values_TNM.mean(-1), sigma_TN=values_TNM.std(-1),
                 valid_TN=valid_TN, catastrophe_TN=label_TN & valid_TN, level_N=level_N)


def auc_of(steps: Steps, pair: tuple[float, float]) -> float:
    score_TN, label_TN = steps.scores(*pair), steps.labels(1)
    return roc_auc_score(label_TN[steps.valid_TN], score_TN[steps.valid_TN])


def test_the_mean_auc_of_one_run_is_its_auc_with_the_same_interval():
    steps = example_steps(0)
    single, used = auc_estimate(steps.scores(-1, 1), steps.labels(1), steps.valid_TN,
                                steps.level_N, seed=5, resamples=RESAMPLES)
    assert mean_auc([steps], 1, (-1, 1), seed=5, resamples=RESAMPLES) == (single, used)


def test_the_mean_auc_of_runs_averages_their_aucs_and_a_gain_pairs_them():
    runs = [example_steps(seed) for seed in range(3)]
    auc, used = mean_auc(runs, 1, (-1, 1), resamples=RESAMPLES)
    assert auc.value == pytest.approx(np.mean([auc_of(r, (-1, 1)) for r in runs]))
    assert auc.low <= auc.value <= auc.high and 0 < used <= RESAMPLES
    gain, _ = mean_auc(runs, 1, (-1, 1), baseline=(-1, 0), resamples=RESAMPLES)
    assert gain.value == pytest.approx(
        np.mean([auc_of(r, (-1, 1)) - auc_of(r, (-1, 0)) for r in runs]))
    assert gain.low < gain.high
    # against itself the gain is 0 in every replicate: the draws are shared
    none, _ = mean_auc(runs, 1, (-1, 1), baseline=(-1, 1), resamples=RESAMPLES)
    assert none.low == none.value == none.high == 0


def test_runs_on_different_levels_are_not_averaged():
    first, other = example_steps(0), example_steps(1)
    other = replace(other, level_N=other.level_N + 100)
    with pytest.raises(ValueError, match="not played on the same levels"):
        mean_auc([first, other], 1, (-1, 0))
    with pytest.raises(ValueError, match="windows"):
        mean_auc([first], 0, (-1, 0))


# Batches ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lava_world():
    return tasks.get("lava-world", train_levels=5)


def collect(family, agent, *, trials_per_task: int = 2):
    task_list = family.sample(5, "train", np.random.default_rng(0))
    collector = Collector(family=family, num_envs=len(task_list) * trials_per_task)
    return collector.collect(agent, task_list, trials_per_task=trials_per_task, seed=0)


@pytest.fixture(scope="module")
def ensemble_batch(lava_world):
    """A lava-world batch of 3 random Markov actor-critics acting by their mean."""
    spec = env_spec(lava_world)
    torch.manual_seed(0)
    ensemble = Ensemble(lambda: MarkovActorCritic(obs_size=spec.obs_size,
                                                  action_size=spec.action_size,
                                                  discrete=True, hidden_sizes=[8]), 3)
    return collect(lava_world, EnsembleAgent(ensemble, mode="mean"))


def check_counts(batch, predictions, windows, grid) -> None:
    """One prediction per window and pair, in order, with the batch's counts of steps."""
    assert [(p.window, p.alpha, p.beta) for p in predictions] == [
        (w, float(a), float(b)) for w in windows for a, b in grid]
    steps = int(batch.valid_TN.sum())
    crashes = int(batch.episode_outcomes()["catastrophe"].sum())
    assert crashes > 0
    for p in predictions:
        assert p.positives + p.negatives == steps
        labels = step_labels(batch.outcomes["catastrophe"], batch.valid_TN, p.window)
        assert p.positives == labels.sum()
        assert p.auc is not None and 0 <= p.auc.low <= p.auc.value <= p.auc.high <= 1
        assert 0 < p.resamples <= RESAMPLES
    assert predictions[0].positives == crashes  # window 1: each episode's last step
    json.dumps([p.as_dict() for p in predictions], allow_nan=False)


def test_an_ensembles_batch_is_scored_for_every_window_and_pair(ensemble_batch):
    predictions = predict_catastrophes(ensemble_batch, resamples=RESAMPLES)
    check_counts(ensemble_batch, predictions, (1, 10), GRID)
    first = predictions[0]
    score_TN = risk_scores(ensemble_batch.extras["values"], first.alpha, first.beta)
    label_TN = step_labels(ensemble_batch.outcomes["catastrophe"], ensemble_batch.valid_TN, 1)
    valid_TN = ensemble_batch.valid_TN.numpy()
    assert first.auc.value == roc_auc_score(label_TN[valid_TN], score_TN[valid_TN])


def test_a_saved_step_record_scores_as_its_batch_does(ensemble_batch, tmp_path):
    steps = Steps.of_batch(ensemble_batch)
    steps.save(tmp_path / "steps.npz")
    loaded = Steps.load(tmp_path / "steps.npz")
    for name in Steps.FIELDS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(steps, name))
    again = predict(loaded, resamples=RESAMPLES)
    first = predict_catastrophes(ensemble_batch, resamples=RESAMPLES)
    assert [p.as_dict() for p in again] == [p.as_dict() for p in first]
    np.savez(tmp_path / "other.npz", mu_TN=steps.mu_TN)
    with pytest.raises(ValueError, match=r"not a step record.*sigma_TN"):
        Steps.load(tmp_path / "other.npz")


def test_a_q_ensemble_records_its_members_state_values_and_is_scored(lava_world):
    spec = env_spec(lava_world)
    torch.manual_seed(0)
    q = Ensemble(lambda: mlp([spec.obs_size, 8, spec.action_size], "relu"), 3)
    batch = collect(lava_world, QAgent(q, member="mean", epsilon=0.5))
    values_TNM = batch.extras["values"]
    assert values_TNM.shape == (*batch.valid_TN.shape, 3)
    with torch.no_grad():
        for m in range(3):
            q_TNA = functional_call(q.module, q.member(m), (batch.obs_TNO,))
            torch.testing.assert_close(values_TNM[..., m], q_TNA.amax(-1))
    grid = [(-1, 0), (0, 1)]
    check_counts(batch, predict_catastrophes(batch, windows=[1, 3], grid=grid,
                                             resamples=RESAMPLES), (1, 3), grid)


def test_a_batch_without_catastrophes_has_counts_but_no_auc(ensemble_batch):
    calm = replace(ensemble_batch, outcomes={
        **ensemble_batch.outcomes,
        "catastrophe": torch.zeros_like(ensemble_batch.outcomes["catastrophe"])})
    [prediction] = predict_catastrophes(calm, windows=[1], grid=[(-1, 1)])
    assert prediction.positives == 0 and prediction.negatives == calm.valid_TN.sum()
    assert prediction.auc is None and prediction.roc is None and prediction.resamples == 0


# Refused input ------------------------------------------------------------------------

def test_bad_windows_grids_and_batches_are_refused_by_name(ensemble_batch, lava_world):
    for windows in ([0], [1, -2], [1.5], [True], []):
        with pytest.raises(ValueError, match=r"^windows: "):
            predict_catastrophes(ensemble_batch, windows=windows)
    with pytest.raises(ValueError, match=r"^windows: "):
        step_labels(np.zeros((2, 1)), np.ones((2, 1)), 0)
    for grid in ([], [(0, 0)], [(-1, float("nan"))], [(-1,)]):
        with pytest.raises(ValueError, match=r"^grid: "):
            predict_catastrophes(ensemble_batch, grid=grid)
    uniform = collect(lava_world, UniformAgent(env_spec(lava_world)), trials_per_task=1)
    with pytest.raises(ValueError, match=r"needs an ensemble's values \(extras 'values' "
                                         r"\[T, N, M\]\); learner random records none"):
        predict_catastrophes(uniform, learner="random")
    no_lava = replace(ensemble_batch, outcomes={"solved": ensemble_batch.outcomes["solved"]})
    with pytest.raises(ValueError, match=r"a family with a `catastrophe` outcome; this "
                                         r"batch's family declares \['solved'\]"):
        predict_catastrophes(no_lava)
    with pytest.raises(ValueError, match="one episode per trial; this batch has 2"):
        predict_catastrophes(replace(ensemble_batch, episodes_per_trial=2))
    with pytest.raises(ValueError, match=r"an AUC needs positive and negative steps"):
        auc_estimate(np.ones((2, 2)), np.zeros((2, 2)), np.ones((2, 2)), np.arange(2))


# fewshot predict -----------------------------------------------------------------------

ENSEMBLE_RUN = ["--family", "lava-world", "--family_options.train_levels", "5",
                "--iterations", "1", "--no-progress"]


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ensemble-lava-world-s0"
    assert cli.main(["train", "--algo", "ensemble", *ENSEMBLE_RUN, "--ensemble.members", "3",
                     "--ensemble.meta_batch_size", "2", "--ensemble.episodes_per_task", "2",
                     "--ensemble.hidden_sizes", "[8]", "--out", str(out)]) == 0
    return out


def test_predict_plays_the_frozen_split_and_writes_the_scores_and_the_figure(ensemble_run,
                                                                             capsys):
    args = ["predict", str(ensemble_run), "--tasks", "12", "--trials", "2", "--windows", "1",
            "4", "--alphas", "-1", "0", "--betas", "0", "1", "3", "--resamples", "20"]
    assert cli.main(args) == 0
    folder = ensemble_run / "prediction-trained-test-id"
    assert f"prediction folder: {folder}" in capsys.readouterr().out
    written = json.loads((folder / "prediction.json").read_text())
    assert (folder / "roc.png").is_file()
    steps = Steps.load(folder / "steps.npz")  # the record the numbers come from
    assert steps.valid_TN.shape[1] == 24 and steps.catastrophe_TN.sum() > 0
    info, predictions = written["info"], written["predictions"]
    assert info["episodes"] == 24 and info["settings"]["windows"] == [1, 4]
    # (0, 0) dropped, and (0, 3) ranks the steps as (0, 1) does
    pairs = [(-1.0, 0.0), (-1.0, 1.0), (-1.0, 3.0), (0.0, 1.0)]
    assert [(p["window"], p["alpha"], p["beta"]) for p in predictions] == [
        (w, *pair) for w in (1, 4) for pair in pairs]
    # window 1: exactly one positive step per catastrophe
    assert predictions[0]["positives"] == info["catastrophes"] > 0
    assert predictions[4]["positives"] >= predictions[0]["positives"]
    # the same seed plays the same episodes and draws the same intervals
    assert cli.main([*args, "--out", str(ensemble_run / "again")]) == 0
    again = json.loads((ensemble_run / "again" / "prediction.json").read_text())
    assert again["predictions"] == predictions


@pytest.mark.parametrize(("args", "message"), [
    (["--windows", "0"], "windows"),
    (["--alphas", "0", "--betas", "0"], "grid"),
    (["--learner", "best"], "learner 'best' is not one that runs of ensemble offer"),
    (["--learner", "random"], "needs an ensemble's values"),
    (["--split", "valid"], r"does not declare the splits \['valid'\]"),
])
def test_predict_refuses_what_it_cannot_score_naming_it(ensemble_run, tmp_path, args,
                                                        message):
    out = tmp_path / "p"
    with pytest.raises(SystemExit, match=message):
        cli.main(["predict", str(ensemble_run), "--tasks", "4", "--resamples", "5",
                  "--out", str(out), *args])
    assert not out.exists()


def test_predict_refuses_a_family_without_catastrophes(tmp_path):
    out = tmp_path / "ppo-maze"
    assert cli.main(["train", "--algo", "ppo", "--family", "maze", "--family_options.min_size",
                     "5", "--family_options.max_size", "5", "--family_options.train_levels",
                     "2", "--iterations", "1", "--ppo.meta_batch_size", "2",
                     "--ppo.episodes_per_task", "1", "--no-progress", "--out", str(out)]) == 0
    with pytest.raises(SystemExit, match="needs a family with a `catastrophe` outcome"):
        cli.main(["predict", str(out), "--tasks", "2"])
