"""The workflows worker (`nexus run workflows`): a Faust app turning domain events into
`notification.submitted` requests, at least once in and idempotent out."""
