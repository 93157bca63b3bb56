package hubspottest

// SandboxToken is the private-app token the sandbox's fake accepts.
const SandboxToken = "sandbox-hubspot-token"
