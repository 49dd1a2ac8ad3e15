"""lm-eval task configs (YAML) and their ``process_results``/aggregation functions for the judge-free metrics.

The YAMLs are templates: :mod:`mdaq.evaluation.harness` prepares a held-out file for the evaluated model and writes
small
override YAMLs (``include:`` the template, ``dataset_kwargs.data_files`` pointing at that file) that lm-eval loads.
"""
