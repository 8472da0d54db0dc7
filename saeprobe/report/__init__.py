"""What a person reads after `dvc repro`: the data set metrics, the headline metrics that
`dvc exp show` lists, and the self-contained report page."""
