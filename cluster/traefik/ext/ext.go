// Package ext is Traefik's extension point of its dynamic configuration: the open-source
// release inlines these two types, empty, in its HTTP configuration and its routers.
package ext

// HTTP is inlined in dynamic.HTTPConfiguration.
type HTTP struct{}

// Router is inlined in dynamic.Router.
type Router struct{}
