"""The send ledger and its policy chain: leasing due deliveries, checking every one at send time, throttling,
and recording each result or skip with its reason."""
