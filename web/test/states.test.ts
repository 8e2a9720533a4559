import { describe, expect, it } from "vitest";
import { liveState, readSessionId } from "../src/index.js";

const status = (fields: Record<string, unknown>) =>
  ({ type: "status", sessionId: "golden-eagle-427", status: "active", listenerCount: 1, speakerConnected: true, ...fields });

describe("the live state", () => {
  it("reads each state from the status message", () => {
    expect(liveState(status({}))).toBe("live");
    expect(liveState(status({ speakerConnected: false }))).toBe("waiting");
    expect(liveState(status({ speakerConnected: false, speakerDisconnectedAt: 1_795_687_200 }))).toBe("speaker-disconnected");
    expect(liveState(status({ status: "paused" }))).toBe("paused");
    expect(liveState(status({ muted: true }))).toBe("muted");
    expect(liveState(status({ status: "paused", muted: true }))).toBe("paused");
    expect(liveState(status({ status: "ended" }))).toBe("ended");
    expect(liveState({ type: "sessionEnded" })).toBe("ended");
  });

  it("says nothing of other messages, and takes a status without presence as the speaker there", () => {
    expect(liveState({ type: "audio" })).toBeUndefined();
    expect(liveState({ type: "status", status: "active" })).toBe("live");
  });
});

describe("a typed session ID", () => {
  it("accepts what phones type: capitals, surrounding spaces, spaces or dashes between the parts", () => {
    for (const typed of ["Ocean-Lantern-615", "  ocean-lantern-615 ", "Ocean Lantern 615", "ocean\u2013lantern\u2014615"]) {
      expect(readSessionId(typed)).toEqual({ sessionId: "ocean-lantern-615" });
    }
  });

  it("explains a malformed ID in words, without repeating it", () => {
    expect(readSessionId("  ").problem).toBe("Enter the session ID: two words and a three-digit number joined by " +
      "hyphens, like golden-eagle-427.");
    expect(readSessionId("ocean-lantern").problem).toMatch(/^A session ID has three parts/);
    expect(readSessionId("ocean-lantern-61").problem).toMatch(/^A session ID ends in three digits/);
    expect(readSessionId("ocean-l4ntern-615").problem).toMatch(/^A session ID starts with two words of letters only/);
    expect(readSessionId("<b>x</b>-y-123").problem).not.toContain("<b>");
  });
});
