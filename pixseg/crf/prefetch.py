"""Software prefetch for the numba kernels: ask for a table row some steps before it is read.

The lattice's gathers (blur chains, splat, slice) read rows of tables larger than the caches in an
order the hardware prefetcher cannot guess; telling the CPU the row a few steps ahead overlaps those
misses instead of waiting on each.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_LINE = 64  # bytes per cache line; a row of 24 float32 spans two


@intrinsic
def prefetch_row(typingctx, table, row):
    """Prefetch the first two cache lines of table[row] (a C-contiguous 2-D array) for reading and
    writing; no effect on results, and no fault on any address."""
    if not isinstance(table, types.Array) or table.ndim != 2 or not isinstance(row, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        table_type, row_type = signature.args
        array = context.make_array(table_type)(context, builder, args[0])
        index = context.cast(builder, args[1], row_type, types.intp)
        zero = context.get_constant(types.intp, 0)
        pointer = cgutils.get_item_pointer(context, builder, table_type, array, [index, zero], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
        start = builder.bitcast(pointer, byte_pointer)
        for offset in (0, _LINE):
            # Arguments: address, 1 = for writing (the blur updates rows in place), locality 3, data cache.
            address = builder.gep(start, [ir.Constant(ir.IntType(64), offset)])
            builder.call(prefetch, [address, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(table, row), codegen
