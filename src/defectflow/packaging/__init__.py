"""Container packaging: the Debian base image and the service image, built, smoke-tested and pushed with
the Docker SDK."""
