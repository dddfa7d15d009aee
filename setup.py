# The cffi module (wire decoding, the portable core and the simulator) is
# declared here because setuptools reads cffi_modules only from setup(); so
# is sealing's C encoder (kextlog_store/seal/_columns.c, against libsqlite3).
from setuptools import Extension, setup

setup(
    cffi_modules=["kextlog_store/_build_native.py:ffibuilder"],
    ext_modules=[
        Extension(
            "kextlog_store.seal._columns",
            ["kextlog_store/seal/_columns.c"],
            libraries=["sqlite3"],
            extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"],
        )
    ],
)
