"""Command-line tools beside training: benchmarks (`python -m engine.tools.bench`,
`engine.tools.bench_scale`), the measurements the estimate is fitted to (`engine.tools.measure`) and
the gradient signal-to-noise probe (`engine.tools.gradient_snr`). `python -m engine.bench_flux` stays
at the top (the FLUX benchmark the GPU machines run).

May import anything in engine/; nothing imports them.
"""
