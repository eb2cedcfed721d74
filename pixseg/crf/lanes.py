"""Row arithmetic on float32 rows in explicit 8-lane vectors, for the numba kernels.

The lattice's hot loops (splat, blur, slice, the fused splat, and the grid lattice's cells) update
rows of C' = 24 floats (21 labels padded to whole vectors) one row at a time. LLVM vectorises a
loop of run-time length for 64 floats per step (four 16-lane registers); a 24-float row never
reaches that loop and runs in its remainder loop, behind checks that the rows do not overlap, on
every row. These intrinsics emit the vector loads, arithmetic and stores themselves, so a row is
three vector updates with no checks. `add_scaled` and `blur_step` take rows of any
length (whole vectors, then the remaining floats one by one) and are inlined into the kernels
(`inline="always"`): as calls, one per row, they cost more than they saved.

The kernels that inline these are cached by `pixseg.jit`, whose keys cover this module too.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from pixseg.jit import jit

_LANES = 8
_VECTOR = ir.VectorType(ir.FloatType(), _LANES)
# Multiplies and adds may fuse (as the kernels' fastmath "contract" allows); nothing else is assumed,
# so infinities and NaNs pass through as in plain float arithmetic.
_CONTRACT = ("contract",)


def _lanes_at(context, builder, array_type, array, start):
    """A pointer to the 8 floats of the 1-D array from index `start` (no bounds check)."""
    proxy = context.make_array(array_type)(context, builder, array)
    pointer = cgutils.get_item_pointer(context, builder, array_type, proxy, [start], wraparound=False)
    return builder.bitcast(pointer, _VECTOR.as_pointer())


def _broadcast(builder, scalar):
    single = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(single, ir.Constant(_VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES))


def _is_float_row(array):
    # Contiguous only: the vector loads read 8 neighbouring floats.
    return isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.float32 and array.layout == "C"


@intrinsic
def _add_scaled_lanes(typingctx, target, source, start, weight):
    """target[start:start + 8] += weight * source[start:start + 8]."""
    if not (_is_float_row(target) and _is_float_row(source) and isinstance(start, types.Integer)
            and weight == types.float32):
        return None

    def codegen(context, builder, signature, args):
        target_type, source_type, start_type, _ = signature.args
        index = context.cast(builder, args[2], start_type, types.intp)
        into = _lanes_at(context, builder, target_type, args[0], index)
        read = _lanes_at(context, builder, source_type, args[1], index)
        product = builder.fmul(_broadcast(builder, args[3]), builder.load(read, align=4), flags=_CONTRACT)
        builder.store(builder.fadd(builder.load(into, align=4), product, flags=_CONTRACT), into, align=4)
        return context.get_dummy_value()

    return types.void(target, source, start, weight), codegen


@intrinsic
def _blur_lanes(typingctx, row, after, kept, start, half):
    """row, kept [start:start + 8] = row + half * (after + kept), row (the old values)."""
    if not (_is_float_row(row) and _is_float_row(after) and _is_float_row(kept) and isinstance(start, types.Integer)
            and half == types.float32):
        return None

    def codegen(context, builder, signature, args):
        row_type, after_type, kept_type, start_type, _ = signature.args
        index = context.cast(builder, args[3], start_type, types.intp)
        own = _lanes_at(context, builder, row_type, args[0], index)
        ahead = _lanes_at(context, builder, after_type, args[1], index)
        behind = _lanes_at(context, builder, kept_type, args[2], index)
        old = builder.load(own, align=4)
        total = builder.fadd(builder.load(ahead, align=4), builder.load(behind, align=4), flags=_CONTRACT)
        new = builder.fadd(old, builder.fmul(_broadcast(builder, args[4]), total, flags=_CONTRACT), flags=_CONTRACT)
        builder.store(new, own, align=4)
        builder.store(old, behind, align=4)
        return context.get_dummy_value()

    return types.void(row, after, kept, start, half), codegen


@jit(fastmath={"contract"}, inline="always")
def add_scaled(target, source, weight):
    """target += weight * source over target's length (source at least as long; float32 rows)."""
    size = target.shape[0]
    whole = size - size % _LANES
    for start in range(0, whole, _LANES):
        _add_scaled_lanes(target, source, start, weight)
    for k in range(whole, size):
        target[k] += weight * source[k]


@jit(fastmath={"contract"}, inline="always")
def blur_step(row, after, kept, half):
    """One step of a blur chain over row's length: row = row + half * (after + kept), and kept
    receives row's old values."""
    size = row.shape[0]
    whole = size - size % _LANES
    for start in range(0, whole, _LANES):
        _blur_lanes(row, after, kept, start, half)
    for k in range(whole, size):
        old = row[k]
        row[k] = old + half * (after[k] + kept[k])
        kept[k] = old
