"""Hyperparameter search with Optuna (`hparams_search=...`, driven by the `hydra/sweeper=optuna` plugin).

space.py turns Hydra's sweep grammar into Optuna distributions, study.py runs the study through Hydra's
launcher (resumable, in a sqlite database beside the MLflow store), pruning.py is the Lightning callback
through which a trial reports its metric and gets pruned.
"""
