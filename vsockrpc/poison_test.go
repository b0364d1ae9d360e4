package vsockrpc

// Every test of the package runs with released request bodies cleared (see putBody).
func init() { poisonReleasedBodies = true }
