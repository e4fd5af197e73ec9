"""The workspace as a network of services: hub, datastations, engines, PKI, audit log, client."""
