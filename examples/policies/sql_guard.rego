# Block destructive statements for everyone outside the "admins" group and
# mask e-mail addresses in results for non-admins.
package portcullis.sql_guard

import rego.v1

destructive := {"DROP TABLE", "TRUNCATE", "DELETE"}

pre_request := {"action": "block", "type": "block_with_custom_message",
	"reason": sprintf("%s is reserved to admins", [input.query.statement_type])} if {
	input.query.statement_type in destructive
	not "admins" in input.user.groups
}

post_request := {"action": "mask", "type": "redact.partial", "columns": ["email"]} if {
	some col in input.columns
	col.name == "email"
	not "admins" in input.user.groups
}
