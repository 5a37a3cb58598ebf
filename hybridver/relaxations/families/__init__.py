"""Relaxation families, one module per op family; every module here is imported (and its
relaxations registered) when the registry is first used."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
