"""Reports: events and messages per hour, error rates, queue / processing / sending times, queue depth over
time, thresholds that alert the delivery supervisors, and per template version figures."""
