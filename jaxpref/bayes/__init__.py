"""The full-Bayesian variant (NumPyro NUTS on the marginalised model, `jaxpref.bayes.model`) and
Bayesian model comparison by PSIS-LOO, WAIC and information criteria (`jaxpref.bayes.compare`).

Import the submodules directly; this package itself loads nothing heavy.
"""
