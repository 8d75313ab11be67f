package formal.v2
post_request := {"action": "mask", "type": "redact.full", "columns": cols} if {
  cols := [c.name | some c in input.columns; c.name in {"email", "ssn"}]
  count(cols) > 0
}
