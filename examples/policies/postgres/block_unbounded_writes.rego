# Block DELETE and UPDATE statements without a WHERE clause.
# input.query.query is the text of the one statement being judged (a
# multi-statement query is judged statement by statement), so a WHERE in a
# neighbouring statement does not count. The test is textual: a WHERE inside
# a sub-select also counts as one, which errs on the side of letting
# deliberate statements through.
package formal.v2
import rego.v1

pre_request := {"action": "block", "reason": "DELETE/UPDATE without WHERE"} if {
  input.query.statement_type in {"DELETE", "UPDATE"}
  not regex.match(`(?i)\bwhere\b`, input.query.query)
}
