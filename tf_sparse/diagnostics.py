"""Density, nonzero counts and FLOPs of a sparse model, as data and as text.

`summary` prints a table of every prunable weight (shape, sparsity pattern,
nonzeros, density, forward FLOPs) followed by the model's inference and
training-step FLOPs; layers a structured pattern left dense are listed
with the reason.
The per-weight numbers come from `tf_sparse.model_report` (its `report`,
`WeightReport`, `ModelReport` and `dense_flops` are re-exported here) and
the training FLOPs from `tf_sparse.flops`, which builds on `model_report`
too. This module composes the two, so imports run one way:
model_report <- flops <- diagnostics.

Example:

    print(tfs.summary(model))
    report = tfs.diagnostics.report(model)
    print(report.total_nonzeros, report.density)
"""

from tf_sparse import flops
from tf_sparse import masking
from tf_sparse import sparsification
from tf_sparse.model_report import ModelReport
from tf_sparse.model_report import WeightReport
from tf_sparse.model_report import dense_flops
from tf_sparse.model_report import format_flops
from tf_sparse.model_report import report

__all__ = ["ModelReport", "WeightReport", "dense_flops", "report", "summary"]


def summary(model, print_fn=None, algorithm=None, **flops_kwargs):
    """Per-weight shape, nonzeros, density and FLOPs, as a text table.

    Below the table: inference and training-step FLOPs per example, dense vs
    sparse, counted with `tf_sparse.flops.training_flops(model, algorithm,
    **flops_kwargs)` (static sparse training when `algorithm` is None).
    Returns the text; also prints it when `print_fn` is given.
    """
    rep = report(model)
    patterns = {mw.path: mw.pattern for mw in masking.masked_weights(model)}
    header = ("weight", "type", "shape", "pattern", "nonzeros", "size",
              "density", "FLOPs dense", "FLOPs sparse")
    rows = []
    for w in rep.weights:
        rows.append((w.path + ("" if w.masked else " (dense)"), w.layer_type,
                     "x".join(str(d) for d in w.shape),
                     patterns.get(w.path, "-"), str(w.nonzeros),
                     str(w.size), f"{w.density:.4f}",
                     format_flops(w.flops_dense),
                     format_flops(w.flops_sparse)))
    rows.append(("total", "", "", "", str(rep.total_nonzeros),
                 str(rep.total_size), f"{rep.density:.4f}",
                 format_flops(rep.flops_dense),
                 format_flops(rep.flops_sparse)))
    widths = [max(len(r[i]) for r in rows + [header])
              for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows[:-1]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.append("  ".join(c.ljust(w) for c, w in zip(rows[-1], widths)))
    if rep.unsupported_layers:
        lines.append("Layers left dense because they cannot be masked: "
                     + ", ".join(rep.unsupported_layers))
    lines.extend(_pattern_misfit_lines(model, patterns))
    try:
        lines.extend(flops.training_flops(model, algorithm,
                                          **flops_kwargs).total_lines())
    except ValueError as error:  # No counting rule for this algorithm.
        lines.append(f"training FLOPs not counted: {error}")
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def _pattern_misfit_lines(model, patterns):
    """One line per structured pattern of the model naming the unmasked
    prunable weights it does not fit, with the reason."""
    lines = []
    structured = sorted({p for p in patterns.values() if p != "unstructured"})
    if not structured:
        return lines
    dense = [t for t in sparsification.find_targets(model)
             if t.path not in patterns]
    for pattern in structured:
        misfits = sparsification.pattern_misfits(dense, pattern)
        if misfits:
            lines.append(
                f"Layers left dense because pattern {pattern!r} does not fit "
                "them: " + "; ".join(f"{p} ({r})" for p, r in misfits.items()))
    return lines
