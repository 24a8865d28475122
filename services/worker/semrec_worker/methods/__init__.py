"""Item-embedding methods: each turns (items, interactions) into an `ItemTable`. One module per paper."""
