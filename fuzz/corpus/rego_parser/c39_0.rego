package test

gql := `
  type Hello {
    world: String
  }
`

ast := {"Definitions": [{"BuiltIn": false, "Description": "", "Fields": [{"Description": "", "Name": "world", "Type": {"NamedType": "String", "NonNull": false}}], "Kind": "OBJECT", "Name": "Hello"}]}

p if {
	graphql.parse_schema(gql) == ast
}
