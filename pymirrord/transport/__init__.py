"""The session-agent link's own websocket: handshake, frames and an asyncio connection."""
