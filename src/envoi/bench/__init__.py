"""``envoi bench``: the benchmark harness. It starts Envoi, a real SMTP sink and the load itself, measures
the machine's own limits in the same run, and reports every figure with its ratio to its baseline."""
