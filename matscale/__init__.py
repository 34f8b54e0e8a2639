"""matscale: measure scaling laws of neural interatomic potentials on OMat24-format data.

Modules follow the data flow: `data` -> `models` -> `train` -> `runs` -> `fit` -> `charts`
-> the book. Import what you need from the sub-packages; this top level stays light.
"""
__version__ = "0.1.0"
