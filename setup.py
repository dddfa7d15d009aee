# The cffi module (wire decoding, the portable core and the simulator) is
# declared here because setuptools reads cffi_modules only from setup().
from setuptools import setup

setup(cffi_modules=["kextlog_store/_build_native.py:ffibuilder"])
