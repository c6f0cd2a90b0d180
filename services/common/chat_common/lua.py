"""Redis Lua scripts, kept as ``.lua`` files in a ``lua/`` folder beside the code that runs them.

A script that uses a shared library of Lua functions (``chat_common/offsets.lua``) is the
library's text followed by its own: Redis runs each script as one chunk, so the functions are
defined in the same call that uses them.
"""

from importlib.resources import files


def lua_source(*names: str) -> str:
    """The text of the scripts ``names``, each ``"<package>/<file>.lua"`` (read from that
    package's ``lua/`` folder), joined in the order given."""
    parts = []
    for name in names:
        package, _, filename = name.partition("/")
        if not package or not filename.endswith(".lua"):
            raise ValueError(f"not a <package>/<file>.lua name: {name!r}")
        parts.append(files(package).joinpath("lua", filename).read_text(encoding="utf-8"))
    return "\n".join(parts)
