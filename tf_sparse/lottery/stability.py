"""Stability of lottery subnetworks to data order and to pruning.

Definitions (Frankle et al. 2019, "Stabilizing the Lottery Ticket
Hypothesis", section 3): with `d(W, W') = ||m * W - m * W'||_2` over the
surviving (masked) prunable weights, not normalised,

- stability to data order: d between two copies of the subnetwork m * W_k
  trained T - k steps with different data orders u, u';
- stability to pruning: d between the full network trained from W_k and the
  subnetwork trained from m * W_k, with the same data order u.

The angle between the masked weight vectors (the paper's appendix B) is
reported too, and the linear-interpolation error barrier between the
data-order copies (`tf_sparse.lottery.instability`).

`run(workdir, config)` works on a finished lottery workdir: it reuses the
level's own training (data order u) as copy 0 and trains the other copies
with data seeds u + 1000 * i, for IMP masks and for random masks with the
same per-layer counts. Extra rewind points (`rewind_points`) train both
copies from W_k' (the dense network trained k' steps with u, written once)
under the level's IMP mask; note the mask itself was found by IMP with the
run's own k, whereas the LMC paper runs IMP separately for every k.

Output: `workdir/stability/` with one folder per trained copy (the folder
protocol of `tf_sparse.lottery.runs`), a `result.json` per analysed
subnetwork (reused when run again with the same settings), `results.json`,
`report.md` and plots.
"""

import math
import os

import numpy as np

from tf_sparse.lottery import baselines
from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import instability
from tf_sparse.lottery import runs
from tf_sparse.lottery import state as state_lib
from tf_sparse.runs import config as run_config
from tf_sparse.runs import workdir as workdir_lib

KINDS = ("imp", "random")
COPY_SEED_STEP = 1000


class StabilityInputError(state_lib.StateError):
    """The lottery workdir lacks what a stability run needs."""


STABILITY = (
    run_config.Key("levels", (0, 5, 10, 15), "IMP levels to analyse (must "
                   "be finished)"),
    run_config.Key("kinds", ("imp", "random"), "IMP masks, and random masks "
                   "with the same per-layer counts"),
    run_config.Key("copies", 2, "trained copies per subnetwork (>= 2)"),
    run_config.Key("rewind_points", (), "extra k' (steps, 'Nep', fraction); "
                   "(): the run's own k"),
    run_config.Key("barrier", True, "error barrier between copies"),
    run_config.Key("alphas", instability.N_ALPHAS, "points on the line"),
    run_config.Key("train_eval_examples", 10000, "training examples of the "
                   "train error"),
    run_config.Key("pruning", True, "stability to pruning (needs level_00)"),
)


def default_config():
    """Keys of a stability run (locked ConfigDict)."""
    return run_config.compose(STABILITY)


def masked_vector(weights, masks):
    """The masked prunable weights as one float64 vector (model order)."""
    return np.concatenate([
        np.where(np.asarray(masks[p]) > 0, np.asarray(weights[p], np.float64),
                 0.0).reshape(-1) for p in masks])


def _dot(a, b):
    """`a . b` of float64 vectors, correctly rounded (`math.fsum` of the
    exact products' roundings): the same bits on every machine, where
    `np.dot` and `np.linalg.norm` sum in the order of the BLAS build."""
    return math.fsum(np.multiply(a, b).tolist())


def l2_distance(weights_a, weights_b, masks):
    """||m * W_a - m * W_b||_2 over all masked weights."""
    d = masked_vector(weights_a, masks) - masked_vector(weights_b, masks)
    return math.sqrt(_dot(d, d))


def angle_degrees(weights_a, weights_b, masks):
    """Angle between m * W_a and m * W_b, in degrees (0 = same direction)."""
    a = masked_vector(weights_a, masks)
    b = masked_vector(weights_b, masks)
    norms = math.sqrt(_dot(a, a)) * math.sqrt(_dot(b, b))
    if norms == 0:
        return float("nan")
    cos = min(max(_dot(a, b) / norms, -1.0), 1.0)
    return math.degrees(math.acos(cos))


def _required_files(lottery_run, config):
    need = [lottery_run.init_path, lottery_run.rewind_path]
    levels = list(config.levels)
    if config.pruning:
        levels = sorted(set(levels) | {0})
    for level in levels:
        d = lottery_run.level_dir(level)
        need += [os.path.join(d, "mask.npz"), os.path.join(d, "final.npz"),
                 os.path.join(d, "metrics.json")]
    return need


def check_inputs(workdir, config):
    """Raises StabilityInputError unless `workdir` is a lottery workdir with
    everything `config` needs; returns nothing, writes nothing."""
    record = workdir_lib.Workdir(workdir).record()
    if record is None or record.get("kind") != "lottery":
        raise StabilityInputError(
            f"{workdir} is not a lottery workdir (its {workdir_lib.RUN_FILE} "
            "is missing or belongs to another kind of run). Run "
            "tools/lottery.py on it first.")
    if config.copies < 2:
        raise StabilityInputError(f"copies={config.copies} must be >= 2.")
    for kind in config.kinds:
        if kind not in KINDS:
            raise StabilityInputError(
                f"kinds entry {kind!r} is not one of {', '.join(KINDS)}.")


def _missing(paths):
    return [p for p in paths if not os.path.exists(p)]


def _copy_seed(run, index):
    return run.data_seed + COPY_SEED_STEP * index


def _rewind_state(run, step, init, rewind):
    """W_step: the run's own k, 0, or a dense pretraining written once."""
    if step == run.steps.rewind:
        return rewind
    if step == 0:
        return init
    path = runs.pretrain_to(
        run, init, step, os.path.join(run.workdir, "stability",
                                      f"rewind_{step}"),
        label=f"stability pretrain to k={step}")
    state = run.load(path, kind="rewind")
    if state.step != step:
        raise state_lib.StateError(f"{path} holds step {state.step}, "
                                   f"expected {step}.")
    return state


def analyse(run, level, kind, step, start_state, masks, config, reuse):
    """Trains the copies of one subnetwork and measures them.

    `reuse`: folder of an existing training with data seed u, start_state
    and masks (used as copy 0), or None.
    """
    base = os.path.join(run.workdir, "stability", f"level_{level:02d}",
                        f"{kind}_k{step}")
    result_path = os.path.join(base, "result.json")
    settings = {"copies": config.copies, "barrier": config.barrier,
                "alphas": config.alphas, "pruning": config.pruning,
                "train_eval_examples": config.train_eval_examples}
    if os.path.exists(result_path):
        saved = workdir_lib.read_json(result_path)
        if saved.get("settings") == settings:
            return saved["result"]
    copy_dirs = []
    for i in range(config.copies):
        if i == 0 and reuse is not None and runs.is_done(reuse):
            copy_dirs.append(reuse)
            continue
        directory = os.path.join(base, f"copy_{i}")
        runs.load_or_write_masks(run, directory, lambda: masks)
        runs.train_branch(
            run, directory, masks=masks, start_state=start_state,
            start_step=step,
            optimizer_state=run.config.rewind_optimizer and
            step == run.steps.rewind,
            data_seed=_copy_seed(run, i), kind=f"stability_{kind}",
            level=level, label=f"stability level {level} {kind} k={step} "
                               f"copy {i}")
        copy_dirs.append(directory)
    finals = [run.load(os.path.join(d, "final.npz"), kind="final")
              for d in copy_dirs]
    accuracies = [workdir_lib.read_json(os.path.join(d, "metrics.json"))[
        "test_accuracy"] for d in copy_dirs]
    weights = [run.prunable(f) for f in finals]
    pairs = []
    for i in range(len(finals)):
        for j in range(i + 1, len(finals)):
            entry = {"a": i, "b": j,
                     "l2": l2_distance(weights[i], weights[j], masks),
                     "angle": angle_degrees(weights[i], weights[j], masks)}
            if config.barrier:
                run.set_masks(masks)
                train_eval = run.data.train_eval(config.train_eval_examples,
                                                 run.config.seed)
                curves = instability.error_curve(
                    run.model, finals[i].model, finals[j].model,
                    {"test": run.data.test(), "train": train_eval},
                    instability.default_alphas(config.alphas))
                entry["test_errors"] = curves["test"]
                entry["train_errors"] = curves["train"]
                entry["test_barrier"] = instability.barrier(curves["test"])
                entry["train_barrier"] = instability.barrier(curves["train"])
            pairs.append(entry)
    total = sum(run.sizes.values())
    result = {
        "level": level, "kind": kind, "rewind_step": step,
        "density": float(sum(int(np.count_nonzero(m)) for m in masks.values())
                         / total),
        "copies": [{"folder": os.path.relpath(d, run.workdir),
                    "data_seed": _copy_seed(run, i),
                    "test_accuracy": a}
                   for i, (d, a) in enumerate(zip(copy_dirs, accuracies))],
        "pairs": pairs,
        "data_order_l2": float(np.mean([p["l2"] for p in pairs])),
        "data_order_angle": float(np.mean([p["angle"] for p in pairs])),
    }
    if config.barrier:
        result["test_barrier"] = float(np.mean([p["test_barrier"]
                                                for p in pairs]))
        result["train_barrier"] = float(np.mean([p["train_barrier"]
                                                 for p in pairs]))
    if config.pruning and step == run.steps.rewind:
        dense = run.load(os.path.join(run.level_dir(0), "final.npz"),
                         kind="final")
        result["pruning_l2"] = l2_distance(run.prunable(dense), weights[0],
                                           masks)
        result["pruning_angle"] = angle_degrees(run.prunable(dense),
                                                weights[0], masks)
    workdir_lib.write_json(result_path, {"settings": settings,
                                       "result": result})
    return result


def run(workdir, config, *, data=None, model_fn=None, verbose=1,
        report=True, strategy=None):
    """Stability and instability of the levels of a finished lottery run.

    Raises StabilityInputError (before writing anything) if the workdir
    lacks the run's config, its init/rewind states, or a requested level.
    """
    check_inputs(workdir, config)
    lottery_config = config_lib.from_record(
        workdir_lib.Workdir(workdir).record()["config"])
    r = runs.prepare(lottery_config, workdir, data=data, model_fn=model_fn,
                     verbose=verbose, write=False, strategy=strategy)
    missing = _missing(_required_files(r, config))
    if missing:
        raise StabilityInputError(
            f"{workdir} lacks what this stability run needs: "
            f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}. "
            "Finish the lottery run to these levels first "
            f"(tools/lottery.py --workdir={workdir} --config.levels="
            f"{max(config.levels)}).")
    points = [r.steps.rewind]
    for value in config.rewind_points:
        step = config_lib.resolve_point(value, r.steps.total,
                                        r.steps.steps_per_epoch,
                                        "rewind_points")
        if step >= r.steps.total:
            raise config_lib.ConfigError(
                f"rewind_points entry {value!r} resolves to step {step}, "
                f"beyond training ({r.steps.total} steps).")
        if step not in points:
            points.append(step)
    init = r.load(r.init_path, kind="init")
    rewind = r.load(r.rewind_path)
    results = []
    for level in config.levels:
        imp_masks = state_lib.load_masks(
            os.path.join(r.level_dir(level), "mask.npz"), r.shapes)
        for step in sorted(points):
            start = _rewind_state(r, step, init, rewind)
            for kind in config.kinds:
                if kind == "random" and level == 0:
                    continue  # all-ones masks: the same as IMP level 0
                if kind == "imp":
                    masks = imp_masks
                    reuse = r.level_dir(level)
                else:
                    masks = baselines.random_prune_masks(
                        imp_masks, r.config.seed, level)
                    reuse = os.path.join(r.level_dir(level), "random_prune")
                if step != r.steps.rewind:
                    reuse = None
                results.append(analyse(r, level, kind, step, start, masks,
                                       config, reuse))
                if verbose:
                    last = results[-1]
                    print(f"[stability] level {level} {kind} k={step}: "
                          f"data-order L2 {last['data_order_l2']:.3f}, angle "
                          f"{last['data_order_angle']:.2f} deg"
                          + (f", test barrier {last['test_barrier']:.4f}"
                             if config.barrier else ""), flush=True)
    out = {"workdir": os.path.basename(os.path.normpath(workdir)),
           "config": run_config.plain(config),
           "rewind_step": r.steps.rewind, "total_steps": r.steps.total,
           "results": results}
    workdir_lib.write_json(os.path.join(workdir, "stability", "results.json"),
                         out)
    if report:
        from tf_sparse.lottery import reports
        reports.write_stability_report(workdir)
    return out
