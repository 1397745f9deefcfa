"""Keras 3's ``model.summary()`` table, rendered as plain text (rich's table
layout, as Keras 3 prints it)."""
from __future__ import annotations

import re
import shutil

import numpy as np


def _format_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"



_RE_WORD = re.compile(r"\s*\S+\s*")


def _words(text):
    """rich's words: (start, end, word with its trailing whitespace)."""
    match = _RE_WORD.match(text, 0)
    while match is not None:
        start, end = match.span()
        yield start, end, match.group(0)
        match = _RE_WORD.match(text, end)


def _divide_line(text, width):
    """rich's ``divide_line`` without folding: offsets at which to break ``text``."""
    breaks = []
    offset = 0
    for start, _end, word in _words(text):
        word_length = len(word.rstrip())
        remaining = width - offset
        if remaining >= word_length:
            offset += len(word)
        elif word_length > width:
            if start:
                breaks.append(start)
            offset = len(word)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def _truncate(line, width):
    return line if len(line) <= width else line[:max(width - 1, 0)] + "…"


def _wrap_cell(text, width, justify):
    """The lines of one table cell, wrapped and justified as rich does."""
    offsets = _divide_line(text, width)
    bounds = [0] + offsets + [len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])] or [""]
    lines = []
    for piece in pieces:
        if len(piece) > width:   # rstrip_end: drop trailing whitespace beyond the width
            stripped = piece.rstrip()
            piece = piece[:max(width, len(stripped))]
        if justify == "left":
            piece = _truncate(piece, width).ljust(width)
        elif justify == "right":
            piece = _truncate(piece.rstrip(), width).rjust(width)
        else:
            piece = _truncate(piece.rstrip(), width)
            left = (width - len(piece)) // 2
            piece = (" " * left + piece).ljust(width)
        lines.append(piece)
    return lines


def _ratio_reduce(total, ratios, maximums, values):
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    remaining = total
    result = []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            distributed = min(maximum, round(ratio * remaining / total_ratio))
            result.append(value - distributed)
            remaining -= distributed
            total_ratio -= ratio
        else:
            result.append(value)
    return result


def _render_table(header, rows, column_widths, justify, line_length):
    n = len(header)
    widths = [w + 2 for w in column_widths]               # + padding (1, 1)
    max_width = line_length - (n + 1)                      # minus the borders
    if sum(widths) > max_width:
        widths = _ratio_reduce(sum(widths) - max_width, [1] * n, widths, widths)
        widths = [max(w, 0) for w in widths]

    def render_row(cells, vertical):
        columns = [[" " + line + " " for line in _wrap_cell(c, max(w - 2, 0), j)]
                   for c, w, j in zip(cells, widths, justify)]
        height = max(len(c) for c in columns)
        for c, w in zip(columns, widths):
            c.extend([" " * w] * (height - len(c)))
        return [vertical + vertical.join(c[i] for c in columns) + vertical
                for i in range(height)]

    def rule(left, fill, mid, right):
        return left + mid.join(fill * w for w in widths) + right

    lines = [rule("┏", "━", "┳", "┓")]
    lines += render_row(header, "┃")
    lines.append(rule("┡", "━", "╇", "┩"))
    for i, row in enumerate(rows):
        if i:
            lines.append(rule("├", "─", "┼", "┤"))
        lines += render_row(row, "│")
    lines.append(rule("└", "─", "┴", "┘"))
    return lines


def _readable_memory_size(size):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _memory(weights):
    unique = {id(w): w for w in weights}.values()
    return float(sum(w.size * w.dtype.itemsize for w in unique))


def _layer_shape_text(layer):
    spec = layer._output_spec
    if spec is None:
        if layer._build_input_shape is None:
            return "?"
        try:
            spec = layer.output
        except AttributeError:
            return "?"
    if isinstance(spec, list):
        if len(spec) == 1:
            return _format_shape(spec[0].shape)
        return "[" + ", ".join(_format_shape(s.shape) for s in spec) + "]"
    return _format_shape(spec.shape)


def _layer_index_bounds(layers, layer_range):
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2 or not all(isinstance(s, str) for s in layer_range):
        raise ValueError("layer_range must be a list or tuple of two strings. Received: "
                         f"layer_range = {layer_range}")
    lower = [i for i, l in enumerate(layers) if re.match(layer_range[0], l.name)]
    upper = [i for i, l in enumerate(layers) if re.match(layer_range[1], l.name)]
    if not lower or not upper:
        raise ValueError("Passed layer_names do not match the layer names in the model. "
                         f"Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def summary_text(model, line_length=None, positions=None, show_trainable=False,
                 layer_range=None):
    """The whole summary of ``model`` (its ``layers``, ``name``, ``weights`` and
    ``optimizer``) as one string, as ``Sequential.summary`` prints it."""
    default_line_length = 88
    positions = list(positions or [0.45, 0.80, 1.0])
    header = ["Layer (type)", "Output Shape", "Param #"]
    justify = ["left", "left", "right"]
    if show_trainable:
        default_line_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    default_line_length = min(default_line_length, shutil.get_terminal_size().columns - 4)
    line_length = line_length or default_line_length
    column_widths = []
    current = 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        column_widths.append(width)
        current += width

    rows = []
    start, stop = _layer_index_bounds(model.layers, layer_range)
    for layer in model.layers[start:stop]:
        name = f"{layer.name} ({type(layer).__name__})"
        if not layer.built:
            params = "0 (unbuilt)"
        else:
            params = f"{layer.count_params():,}"
        row = [name, _layer_shape_text(layer), params]
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)

    trainable = model.trainable_weights
    non_trainable = model.non_trainable_weights
    t_count = int(sum(w.size for w in trainable))
    nt_count = int(sum(w.size for w in non_trainable))
    t_mem, nt_mem = _memory(trainable), _memory(non_trainable)
    opt = model.optimizer
    opt_vars = opt.variables if (model.compiled and opt is not None and opt.built) else []
    o_count = int(sum(np.size(v) for v in opt_vars))
    o_mem = _memory([np.asarray(v) for v in opt_vars])
    lines = [f'Model: "{model.name}"']
    lines += _render_table(header, rows, column_widths, justify, line_length)
    lines.append(f" Total params: {t_count + nt_count + o_count:,} "
                 f"({_readable_memory_size(t_mem + nt_mem + o_mem)})")
    lines.append(f" Trainable params: {t_count:,} ({_readable_memory_size(t_mem)})")
    lines.append(f" Non-trainable params: {nt_count:,} ({_readable_memory_size(nt_mem)})")
    if opt_vars:
        lines.append(f" Optimizer params: {o_count:,} ({_readable_memory_size(o_mem)})")
    return "\n".join(lines) + "\n"
