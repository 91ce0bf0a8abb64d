"""The registry API's handlers, one module per resource; ``ocistore.server.app`` combines them
into the application and ``ocistore.server.routing`` maps requests onto them."""
