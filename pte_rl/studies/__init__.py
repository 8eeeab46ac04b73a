"""Studies: experiments built on the layers below.

  ablate, report, seed_stats   reward ablations and their report (accuracy against PTE)
  calibrate, replay            timing turn shapes on a model, fitting gamma and delta
  latency, latency_report      does PTE track latency: replayed trajectories, correlations, plots
  scaled_model                 a real architecture scaled down to CPU size (rehearsals, latency)
"""
