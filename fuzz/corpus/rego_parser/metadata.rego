# METADATA
# title: x
# authors:
# - A B <a@b.c>
package p

# METADATA
# scope: document
q := rego.metadata.chain()
