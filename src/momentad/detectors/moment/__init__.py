"""MOMENT (Goswami et al., ICML 2024) as one package: the registered detector (:mod:`.detector`:
loads the weights, picks the recipe once), its params (:mod:`.params`), the weights and where
they come from (:mod:`.weights`, :mod:`.lora`), what every recipe scores with (:mod:`.scoring`,
:mod:`.level_scale`) and one module per recipe (:mod:`.recipes`).

This file imports nothing: the method registry imports :mod:`.detector`.
"""
