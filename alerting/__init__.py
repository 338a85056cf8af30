"""Incidents from verdicts: the policy rules, the incident state machine, escalation and routing
(`policy`, `incidents`, `escalation`), then the durable outbox and its notifiers (`outbox`,
`notifiers/`)."""
