"""Response and request shapes shared by more than one router."""
