"""creditplus: the nightly credit grading warehouse for Heihe's 信用+龙头企业 programme."""
