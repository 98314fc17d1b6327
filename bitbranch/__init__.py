"""bitbranch: simulator, compiler and RTL harness for a multi-branch binary neural-network accelerator.

One import root over the product's folders (pyproject.toml maps them): `bitbranch.isa`, `bitbranch.compiler`,
`bitbranch.simulator`, `bitbranch.rtl` (the Verilog), `bitbranch.rtlharness`, `bitbranch.workloads`; this
folder itself holds the command-line front end (the `bitbranch` console script).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bitbranch")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
