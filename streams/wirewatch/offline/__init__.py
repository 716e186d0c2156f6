"""Tools that run without a broker: the simulated feed, evaluation against labels, the spike backtest, the JSON Schemas."""
