"""faultlab: a reliability test harness and fault injector for Socket.IO chats."""

__version__ = "0.1.0"
