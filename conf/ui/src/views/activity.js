import { h, clear, notice } from "../dom.js";
import { feedList, feedState } from "./feed.js";

export function renderActivity(section, { activity }) {
    const stateBox = h("p", {});
    const box = h("div", {});
    section.append(stateBox, box);
    return activity.subscribe(() => {
        clear(stateBox, "Events arrive as they happen: ", feedState(activity));
        clear(box, activity.error ? notice("error", activity.error) : null,
            feedList(activity.items));
    });
}
