# Analysts see personal columns masked: e-mail addresses keep their last four
# characters, phone numbers and SSNs are hashed with the resource's salt (so
# equal values still join), anything named *name is nullified.
# A set rule: each element is one decision; masks of several policies or
# elements combine, the strongest per column winning.
package formal.v2
import rego.v1

post_request contains {"action": "mask", "type": "redact.partial", "columns": cols} if {
  "analysts" in input.user.groups
  cols := [c.name | some c in input.columns; c.name == "email"]
  count(cols) > 0
}

post_request contains {"action": "mask", "type": "hash.with_salt", "columns": cols} if {
  "analysts" in input.user.groups
  cols := [c.name | some c in input.columns; c.name in {"phone", "ssn"}]
  count(cols) > 0
}

post_request contains {"action": "mask", "type": "nullify", "columns": cols} if {
  "analysts" in input.user.groups
  cols := [c.name | some c in input.columns; endswith(c.name, "name")]
  count(cols) > 0
}
