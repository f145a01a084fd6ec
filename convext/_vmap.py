"""Batching rules (torch.vmap) for every convext op, after ATen's convolution
batch rules (functorch/BatchRulesConvolution.cpp): the vmapped dimension B is
folded into one the op already has, so a vmapped call is one kernel call.

  only the data (input / grad_output) batched  -> B folded into N
  only the weight batched                      -> B folded into each group's
                                                  channels (OC, or C for grad_input)
  both batched                                 -> B folded into groups

Each rule has register_vmap's signature, rule(info, in_dims, *args) ->
(output, out_dim), and calls the op itself on the folded arguments.
"""
import torch

ops = torch.ops.convext


def _into(t, bdim, dim):
    """Merge the batch dim `bdim` of t into dim `dim`, the batch outermost."""
    return t.movedim(bdim, dim).flatten(dim, dim + 1)


def _into_groups(t, bdim, dim, groups):
    """Merge bdim into dim `dim` group by group: (G, C/G) -> (G, B, C/G)."""
    return t.movedim(bdim, 0).unflatten(dim + 1, (groups, -1)).movedim(0, dim + 1) \
        .flatten(dim, dim + 2)


def _outof_groups(t, dim, groups, batch):
    """Undo _into_groups: split dim `dim` (G, B, C/G) and move B before it."""
    return t.unflatten(dim, (groups, batch, -1)).movedim(dim + 1, dim).flatten(dim + 1, dim + 2)


def conv_rule(dims):
    conv = getattr(ops, f"conv{dims}d")

    def rule(info, in_dims, input, weight, bias, stride, padding, dilation, groups):
        x_bd, w_bd, b_bd = in_dims[:3]
        batch, params = info.batch_size, (stride, padding, dilation)
        if w_bd is None:
            if x_bd is None:  # only the bias: broadcast against it below
                out = conv(input, weight, None, *params, groups).unsqueeze(0)
            else:
                out = conv(_into(input, x_bd, 0), weight, bias if b_bd is None else None,
                           *params, groups).unflatten(0, (batch, -1))
            if b_bd is not None:
                out = out + bias.movedim(b_bd, 0).reshape(batch, 1, -1, *[1] * dims)
            return out, 0
        if bias is not None:  # (B, OC) whether batched or not
            bias = bias.movedim(b_bd, 0) if b_bd is not None else bias.expand(batch, -1)
        if x_bd is None:
            out = conv(input, _into_groups(weight, w_bd, 0, groups),
                       None if bias is None else _into_groups(bias, 0, 0, groups),
                       *params, groups)
            return _outof_groups(out, 1, groups, batch), 1
        out = conv(_into(input, x_bd, 1), _into(weight, w_bd, 0),
                   None if bias is None else bias.flatten(), *params, groups * batch)
        return out.unflatten(1, (batch, -1)), 1

    return rule


def _backward_op_rule(name, fold):
    """Rule for a backward op, op(a, b, size, stride, padding, dilation,
    groups): fold(batch, a, a_bdim, b, b_bdim, size, groups) gives the op's
    folded (a, b, size, groups) and how to unfold its output."""
    op = getattr(ops, name)

    def rule(info, in_dims, a, b, size, stride, padding, dilation, groups):
        a, b, size, folded_groups, unfold = fold(info.batch_size, a, in_dims[0], b, in_dims[1],
                                                 list(size), groups)
        return unfold(op(a, b, size, stride, padding, dilation, folded_groups))

    return rule


def grad_input_rule(dims):
    """grad_input's rule: _fold_grad_input, with the bias (one per input
    channel) folded as the channels are, so that the op still adds it before
    rounding. A batched bias with an unbatched weight batches the weight
    (expanded), since only channels folded per batch can take it."""
    op = getattr(ops, f"conv{dims}d_grad_input")

    def rule(info, in_dims, grad_output, weight, size, stride, padding, dilation, groups,
             bias=None):
        batch, go_bd, w_bd = info.batch_size, in_dims[0], in_dims[1]
        b_bd = in_dims[7] if len(in_dims) > 7 else None
        if bias is not None and (w_bd is not None or b_bd is not None):
            if w_bd is None:
                weight, w_bd = weight.expand(batch, *weight.shape), 0
            bias = bias.movedim(b_bd, 0) if b_bd is not None else bias.expand(batch, -1)
        grad_output, weight, size, folded_groups, unfold = _fold_grad_input(
            batch, grad_output, go_bd, weight, w_bd, list(size), groups)
        if bias is not None and w_bd is not None:  # bias is (B, C): as the channels
            bias = bias.flatten() if go_bd is not None else _into_groups(bias, 0, 0, groups)
        return unfold(op(grad_output, weight, size, stride, padding, dilation, folded_groups,
                         bias))

    return rule


def _fold_grad_input(batch, grad_output, go_bd, weight, w_bd, input_size, groups):
    n, c, *spatial = input_size
    if w_bd is None:
        return (_into(grad_output, go_bd, 0), weight, [batch * n, c, *spatial], groups,
                lambda out: (out.unflatten(0, (batch, -1)), 0))
    size = [n, batch * c, *spatial]
    if go_bd is None:
        # The weight's dim 1 holds each group's input channels.
        weight = weight.movedim(w_bd, 0).unflatten(1, (groups, -1)).movedim(0, 2) \
            .flatten(0, 1).flatten(1, 2)
        return (grad_output, weight, size, groups,
                lambda out: (_outof_groups(out, 1, groups, batch), 1))
    return (_into(grad_output, go_bd, 1), _into(weight, w_bd, 0), size, groups * batch,
            lambda out: (out.unflatten(1, (batch, -1)), 1))


def _fold_grad_weight(batch, grad_output, go_bd, input, x_bd, weight_size, groups):
    oc, cg, *kernel = weight_size
    if x_bd is None:
        return (_into_groups(grad_output, go_bd, 1, groups), input, [batch * oc, cg, *kernel],
                groups, lambda out: (_outof_groups(out, 0, groups, batch), 0))
    if go_bd is None:
        return (grad_output, _into_groups(input, x_bd, 1, groups), [oc, batch * cg, *kernel],
                groups, lambda out: (out.unflatten(1, (batch, -1)), 1))
    return (_into(grad_output, go_bd, 1), _into(input, x_bd, 1), [batch * oc, cg, *kernel],
            groups * batch, lambda out: (out.unflatten(0, (batch, -1)), 0))


def grad_bias_rule(info, in_dims, grad_output):
    out = ops.conv_grad_bias(_into(grad_output, in_dims[0], 1))
    return out.unflatten(0, (info.batch_size, -1)), 0


def register():
    for dims in (1, 2):
        torch.library.register_vmap(f"convext::conv{dims}d", conv_rule(dims))
        torch.library.register_vmap(f"convext::conv{dims}d_grad_input", grad_input_rule(dims))
        name = f"conv{dims}d_grad_weight"
        torch.library.register_vmap(f"convext::{name}", _backward_op_rule(name, _fold_grad_weight))
    torch.library.register_vmap("convext::conv_grad_bias", grad_bias_rule)
