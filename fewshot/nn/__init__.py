"""Networks: policies run with explicit parameters, actor-critics and ensembles."""
