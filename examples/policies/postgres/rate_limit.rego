# At most 100 statements a minute and 2000 an hour per user and resource
# (counted across every connector instance of the cluster; the current
# statement is included, so "> 100" blocks the 101st).
package formal.v2
import future.keywords.if

pre_request := {"action": "block", "reason": "rate limit: 100 statements a minute"} if {
  input.user.access_count.last_minute > 100
}

else := {"action": "block", "reason": "rate limit: 2000 statements an hour"} if {
  input.user.access_count.last_hour > 2000
}
