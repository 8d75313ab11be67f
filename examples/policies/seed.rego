# The seed policy of the product contract: block a user's 6th access to the
# sensitive bucket within a minute, whichever connector instances served the
# first five.
package formal.v2

import future.keywords.if

pre_request := {"action": "block", "type": "block_with_formal_message"} if {
	input.bucket.name == "sensitive-bucket"
	input.bucket.access_count.last_minute > 5
}
