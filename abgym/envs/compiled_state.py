"""The numba structref that hands a simulator's numpy arrays and constants to its compiled single step as one
argument (abgym.envs.marketing_step, abgym.envs.journey_step).

Why a structref: a numba function unboxes each array argument on every call (about 130 ns each); a structref is one
object, about 0.5 us a call whatever it holds. It holds the simulator's own arrays, not copies, so those arrays
must be written in place, never rebound, while it lives. Each step module declares its fields' numba types and
builds its state with a cached compiled constructor (``structref.new(state_type(...))``): the proxy constructor
numba would generate is compiled again in every process.
"""
from __future__ import annotations

from numba import types
from numba.np.numpy_support import as_dtype
from numba.experimental import structref


@structref.register
class CompiledStateType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(kind)) for name, kind in fields)


class CompiledState(structref.StructRefProxy):
    """A simulator's arrays (shared, not copied) and constants, as one argument for its compiled step."""


structref.define_boxing(CompiledStateType, CompiledState)


def state_type(array_types: dict, constant_types: dict) -> CompiledStateType:
    """The structref type with these fields, arrays first, in the dicts' order."""
    return CompiledStateType(list(array_types.items()) + list(constant_types.items()))


def build_state(constructor, parts: tuple[dict, dict], array_types: dict, constant_types: dict, owner: str):
    """The state from ``parts`` (arrays and constants by field name), through the step module's cached
    ``constructor``, which takes them as two tuples in the declared order. The declared arrays are C-contiguous
    and of the declared dtype: any other (a view of a transposed array, an int32 array) is refused."""
    arrays, constants = parts
    for name, array in arrays.items():
        if not array.flags.c_contiguous:
            raise AssertionError(f"{owner}'s {name} must be C-contiguous for the compiled step")
    try:
        return constructor(tuple(arrays[name] for name in array_types),
                           tuple(constants[name] for name in constant_types))
    except Exception:  # numba's typing error; the dtypes are checked only then (30 checks cost 12 us a seed)
        for name, array in arrays.items():
            declared = as_dtype(array_types[name].dtype)
            if array.dtype != declared:  # numpy's default integer is 32-bit on Windows before numpy 2
                raise TypeError(f"{owner}'s {name} is {array.dtype}, but its compiled step declares {declared}: "
                                "install numpy 2 or newer (pip install 'numpy>=2'), whose default integer is 64-bit"
                                ) from None
        raise
